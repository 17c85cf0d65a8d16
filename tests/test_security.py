"""Hostile or odd input to a shared studio: model names, sampling controls."""
import pytest

from finetune.errors import ModelNotAvailable
from finetune.generate import GenerationSettings
from finetune.models import EMBEDDED_MODEL, ModelPolicy


@pytest.fixture
def policy(tmp_path):
    return ModelPolicy((str(tmp_path / "work"), str(EMBEDDED_MODEL).rsplit("/", 1)[0]))


@pytest.mark.parametrize("name", [
    "/etc", "/etc/passwd", "~/.ssh", "../", "../../etc", "assets/../../etc",
    "https://example.com/model", "file:///etc/passwd", "http://127.0.0.1:8000/x",
    "owner/name/../../x", "a\x00b", "owner/na me",
])
def test_policy_refuses_paths_outside_urls_and_odd_names(policy, name):
    with pytest.raises(ModelNotAvailable):
        policy.check(name)


def test_policy_refuses_a_symlink_that_leads_outside(policy, tmp_path):
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "sneaky").symlink_to("/etc")
    with pytest.raises(ModelNotAvailable, match="app's own folders"):
        policy.check(str(tmp_path / "work" / "sneaky"))


def test_policy_accepts_hub_ids_and_folders_inside(policy, tmp_path):
    (tmp_path / "work" / "runs" / "r1").mkdir(parents=True)
    policy.check("rinna/japanese-gpt2-xsmall")
    policy.check("gpt2")
    policy.check(EMBEDDED_MODEL)
    policy.check(str(tmp_path / "work" / "runs" / "r1"))


def test_the_studio_applies_the_policy(monkeypatch):
    import app
    with pytest.raises(Exception) as err:
        app.tokenize("こんにちは", "/etc")
    assert "app's own folders" in str(err.value) or "フォルダ" in str(err.value)


@pytest.mark.parametrize("bad", [dict(max_new_tokens=0), dict(max_new_tokens=-5), dict(max_new_tokens=10**9),
                                 dict(temperature=-1), dict(temperature=1e9), dict(top_p=0), dict(top_p=2),
                                 dict(top_k=-1), dict(repetition_penalty=0), dict(repetition_penalty=100)])
def test_sampling_controls_out_of_range_are_refused_not_crashes(bad):
    with pytest.raises(ValueError):
        GenerationSettings(**bad)
