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


def remote_code_folder(folder, marker):
    """A model folder whose config, model and tokenizer all name Python files of their own; each file
    leaves `marker` behind if it is ever imported."""
    import json
    folder.mkdir()
    run_me = f"open({str(marker)!r}, 'w').write('ran')\n"
    (folder / "configuration_evil.py").write_text(
        run_me + "from transformers import PretrainedConfig\n\n"
        "class EvilConfig(PretrainedConfig):\n    model_type = 'evilgpt'\n", encoding="utf-8")
    (folder / "modeling_evil.py").write_text(run_me + "from transformers import GPT2LMHeadModel as EvilModel\n",
                                             encoding="utf-8")
    (folder / "tokenization_evil.py").write_text(
        run_me + "from transformers import PreTrainedTokenizerFast as EvilTokenizer\n", encoding="utf-8")
    (folder / "config.json").write_text(json.dumps({"model_type": "evilgpt", "auto_map": {
        "AutoConfig": "configuration_evil.EvilConfig", "AutoModelForCausalLM": "modeling_evil.EvilModel"}}),
        encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps({"auto_map": {
        "AutoTokenizer": ["tokenization_evil.EvilTokenizer", None]}}), encoding="utf-8")
    return folder


@pytest.mark.parametrize("load", ["model", "tokenizer"])
def test_remote_code_never_runs_even_if_someone_answers_yes(load, tmp_path, monkeypatch):
    """transformers asks "Do you wish to run the custom code? [y/N]" on a terminal unless
    trust_remote_code is given: the engine must pass False, so no prompt and no import."""
    from finetune.models import load_model, load_tokenizer_for, resolve_source
    marker = tmp_path / "ran"
    asked = []
    monkeypatch.setattr("builtins.input", lambda prompt="": asked.append(prompt) or "y")
    source = resolve_source(str(remote_code_folder(tmp_path / "evil", marker)))
    with pytest.raises(ModelNotAvailable):
        load_model(source) if load == "model" else load_tokenizer_for(source)
    assert not marker.exists() and not asked
