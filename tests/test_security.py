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
    from studio import callbacks
    with pytest.raises(Exception) as err:
        callbacks.tokenize("こんにちは", "/etc")
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


def model_copy(tiny_model, folder, safetensors=True, pickle=False):
    """The embedded model's config and tokenizer with its weights as safetensors, as a pickle
    (pytorch_model.bin, a torch.save'd state dict: transformers 5.24 has no safe_serialization=False)
    or both."""
    import shutil

    import torch
    from safetensors.torch import load_file
    folder.mkdir(parents=True)
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "spiece.model"):
        shutil.copy(f"{tiny_model}/{name}", folder / name)
    weights = load_file(f"{tiny_model}/model.safetensors")
    if safetensors:
        shutil.copy(f"{tiny_model}/model.safetensors", folder / "model.safetensors")
    if pickle:
        torch.save(weights, folder / "pytorch_model.bin")
    return folder


def test_the_studio_opens_no_pickle_only_model(policy, tmp_path, tiny_model):
    only_bin = model_copy(tiny_model, tmp_path / "work" / "old", safetensors=False, pickle=True)
    policy.check(str(only_bin))  # the place is fine …
    with pytest.raises(ModelNotAvailable, match=r"pickle weights only \(pytorch_model.bin\).*safetensors"):
        policy.check_weights(str(only_bin))  # … the weights are not
    policy.check_weights(str(model_copy(tiny_model, tmp_path / "work" / "both", pickle=True)))
    policy.check_weights(EMBEDDED_MODEL)


def test_a_lora_folder_is_checked_with_its_base(policy, tmp_path, tiny_model):
    import json
    adapter = tmp_path / "work" / "lora"
    adapter.mkdir(parents=True)
    (adapter / "adapter_model.bin").write_bytes(b"\0")
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "/etc"}), encoding="utf-8")
    with pytest.raises(ModelNotAvailable, match="app's own folders"):
        policy.check(str(adapter))  # a base outside the app's folders
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": EMBEDDED_MODEL}),
                                                 encoding="utf-8")
    policy.check(str(adapter))
    with pytest.raises(ModelNotAvailable, match="adapter_model.bin"):
        policy.check_weights(str(adapter))


def test_hub_models_with_pickle_weights_only_are_refused_except_the_default_base(policy, tmp_path, monkeypatch):
    """A Hub model in the local cache (a fake cache here, offline) that holds only pytorch_model.bin."""
    import huggingface_hub.constants

    from finetune.models import DEFAULT_BASE
    for repo in ("someone/old-gpt", DEFAULT_BASE):
        cached = tmp_path / "hub" / f"models--{repo.replace('/', '--')}"
        (cached / "refs").mkdir(parents=True)
        (cached / "refs" / "main").write_text("abc", encoding="utf-8")
        (cached / "snapshots" / "abc").mkdir(parents=True)
        for name in ("config.json", "pytorch_model.bin"):
            (cached / "snapshots" / "abc" / name).write_bytes(b"{}")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(ModelNotAvailable, match="someone/old-gpt has pickle weights only"):
        policy.check_weights("someone/old-gpt")
    policy.check_weights(DEFAULT_BASE)  # trusted: read with weights_only=True if that is all it has


def test_the_command_line_reads_pickle_weights_as_tensors_only(tiny_model, tmp_path):
    """Outside the studio a .bin model still loads, through torch's weights_only unpickler; a pickle
    that would run code is refused, and the code does not run."""
    import os
    import pickle

    import torch

    from finetune.models import load_model, resolve_source
    only_bin = model_copy(tiny_model, tmp_path / "old", safetensors=False, pickle=True)
    loaded = load_model(resolve_source(str(only_bin)))
    expected = load_model(resolve_source(tiny_model))
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), expected.state_dict().values()))

    marker = tmp_path / "ran"

    class RunsCode:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    with open(only_bin / "pytorch_model.bin", "wb") as f:
        pickle.dump({"transformer.wte.weight": RunsCode()}, f)
    with pytest.raises(ModelNotAvailable, match="objects other than tensors"):
        load_model(resolve_source(str(only_bin)))
    assert not marker.exists()


def test_the_studio_cache_and_training_job_check_the_weights(policy, tmp_path, tiny_model, unseen_text):
    from finetune.cache import ModelCache
    from finetune.runner import TrainingJob
    from finetune.train import TrainSettings
    only_bin = str(model_copy(tiny_model, tmp_path / "work" / "old", safetensors=False, pickle=True))
    with pytest.raises(ModelNotAvailable, match="pickle weights only"):
        ModelCache(policy=policy).model(only_bin)
    job = TrainingJob(tmp_path / "work" / "runs", policy=policy)
    with pytest.raises(ModelNotAvailable, match="pickle weights only"):
        job.start(TrainSettings(model=only_bin, data=[str(unseen_text)], max_steps=1))
    assert job.thread is None


@pytest.mark.parametrize("action", ["make_zip", "push_to_hub"])
def test_the_share_tab_opens_only_the_apps_own_folders(action):
    """Zip and push take a folder name from the page (or any API client): a private model elsewhere
    on the server must not be downloadable through them."""
    import gradio as gr

    from studio import callbacks
    with pytest.raises(gr.Error) as err:
        getattr(callbacks, action)("/root/private-model", *([False] if action == "make_zip" else ["repo"]))
    assert "app's own folders" in err.value.message


def test_uploads_are_not_model_folders():
    from studio import shared
    assert str(shared.WORK / "runs") in shared.POLICY.roots and str(shared.WORK) not in shared.POLICY.roots
