"""Model resolution: folders, adapters, and a fast, explained failure when the Hub is out of reach."""
import time

import pytest

from finetune.errors import ModelNotAvailable
from finetune.models import EMBEDDED_MODEL, resolve_source


def test_uncached_hub_id_offline_fails_fast_and_names_the_embedded_model():
    started = time.perf_counter()
    with pytest.raises(ModelNotAvailable) as err:
        resolve_source("rinna/japanese-gpt2-xsmall")
    assert time.perf_counter() - started < 5
    assert "offline" in str(err.value) and EMBEDDED_MODEL in str(err.value)


def test_folder_without_model_is_explained(tmp_path):
    with pytest.raises(ModelNotAvailable, match="config.json"):
        resolve_source(str(tmp_path))
    with pytest.raises(ModelNotAvailable, match="no such folder"):
        resolve_source(str(tmp_path / "missing"))


def test_embedded_model_resolves_locally(tiny_model):
    source = resolve_source(tiny_model)
    assert source.local_files_only and not source.adapter
