"""Model resolution: folders, adapters, and a fast, explained failure when the Hub is out of reach."""
import socket

import pytest

from finetune.errors import ModelNotAvailable
from finetune.models import EMBEDDED_MODEL, resolve_source


@pytest.fixture
def connections(monkeypatch):
    """Every TCP connection attempted, as (address, timeout); each one fails as on a machine without
    network (no real connection is ever made, so no time passes)."""
    attempts = []

    def refuse(address, timeout=None, *args, **kwargs):
        attempts.append((address, timeout))
        raise OSError("network is unreachable")

    monkeypatch.setattr(socket, "create_connection", refuse)
    return attempts


def test_uncached_hub_id_offline_fails_without_touching_the_network(connections):
    with pytest.raises(ModelNotAvailable) as err:
        resolve_source("someone/not-cached-model")
    assert connections == []  # HF_HUB_OFFLINE (set by conftest) is honoured before any attempt
    assert "offline" in str(err.value) and EMBEDDED_MODEL in str(err.value)


def test_uncached_hub_id_with_the_hub_out_of_reach_tries_once_with_a_short_timeout(connections, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "https://hub.invalid")
    with pytest.raises(ModelNotAvailable) as err:
        resolve_source("someone/not-cached-model")
    assert connections == [(("hub.invalid", 443), 3.0)]  # one attempt, given up after 3 s at most
    assert "cannot be reached" in str(err.value) and EMBEDDED_MODEL in str(err.value)


def test_folder_without_model_is_explained(tmp_path):
    with pytest.raises(ModelNotAvailable, match="config.json"):
        resolve_source(str(tmp_path))
    with pytest.raises(ModelNotAvailable, match="no such folder"):
        resolve_source(str(tmp_path / "missing"))


def test_embedded_model_resolves_locally(tiny_model):
    source = resolve_source(tiny_model)
    assert source.local_files_only and not source.adapter
