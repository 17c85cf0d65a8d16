"""Sharing: push to a local stand-in for the Hub (tests/hub_stub.py) with huggingface_hub's own client,
export zips that load without this tool, specific errors, and a token that never leaks."""
import json
import logging
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from conftest import ROOT
from finetune.errors import FinetuneError
from finetune.share import (HubUnreachable, InvalidRepoName, NotATrainedModel, NotLoggedIn, PushSettings,
                            RepoNotYours, TokenLacksWrite, export_zip, model_folder, push)
from finetune.train import TrainSettings, train
from hub_stub import HubStub

TOKEN = "hf_TESTtokenAlice0123456789abcdefSECRET"
READ_TOKEN = "hf_TESTreadOnly0123456789abcdefSECRET"
FINE_TOKEN = "hf_TESTfineGrained0123456789abcSECRET"
SECRETS = (TOKEN, READ_TOKEN, FINE_TOKEN)
REPO_FILES = {"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "spiece.model",
              "training_config.json", "metrics.json", "README.md"}


def trained(tiny_model, unseen_text, out, method):
    train(TrainSettings(model=tiny_model, data=[str(unseen_text)], out=str(out), method=method, max_steps=5,
                        block_size=64, batch_size=4, device="cpu", seed=0, lr=1e-3))
    (out / "STOP").write_text("", encoding="utf-8")   # leftovers a push must not upload
    (out / "checkpoints" / "checkpoint-5").mkdir(parents=True, exist_ok=True)
    (out / "checkpoints" / "checkpoint-5" / "optimizer.pt").write_bytes(b"\0" * 16)
    return out


@pytest.fixture(scope="module")
def full_out(tiny_model, unseen_text, tmp_path_factory):
    return trained(tiny_model, unseen_text, tmp_path_factory.mktemp("share-full"), "full")


@pytest.fixture(scope="module")
def lora_out(tiny_model, unseen_text, tmp_path_factory):
    return trained(tiny_model, unseen_text, tmp_path_factory.mktemp("share-lora"), "lora")


@pytest.fixture
def hub(monkeypatch, caplog):
    """The stub Hub, online mode for huggingface_hub (read at import into its constants), debug logs
    (with request dumps) captured from every library."""
    import huggingface_hub.constants as constants
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_DEBUG", True)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="huggingface_hub")
    for name in ("huggingface_hub", "finetune", "httpx2", "httpcore2"):
        logging.getLogger(name).addHandler(caplog.handler)
    with HubStub() as stub:
        stub.add_user(TOKEN, "alice", orgs=["team"])
        stub.add_user(READ_TOKEN, "reader", role="read")
        stub.add_user(FINE_TOKEN, "finegrained", role="fineGrained")
        stub.add_repo("bob/taken", owner="bob")
        yield stub
    for name in ("huggingface_hub", "finetune", "httpx2", "httpcore2"):
        logging.getLogger(name).removeHandler(caplog.handler)


def settings(hub, model_dir, repo, **kw) -> PushSettings:
    return PushSettings(model_dir=str(model_dir), repo=repo, endpoint=hub.url, **kw)


def card_of(files: dict):
    from huggingface_hub import ModelCard
    return ModelCard(files["README.md"].decode("utf-8"))


def assert_nothing_leaks(hub, caplog, capsys, *folders):
    """No token in any byte sent to the Hub (request bodies and decoded files), in any log record,
    on stdout/stderr, or in any file left on disk in the given folders."""
    sent = b"".join(hub.state.bodies) + b"".join(b for repo in hub.files.values() for b in repo.values())
    logs = "\n".join(r.getMessage() for r in caplog.records)
    out = capsys.readouterr()
    assert caplog.records, "expected some log records to scan"
    for secret in SECRETS:
        assert secret.encode() not in sent
        assert secret not in logs and secret not in out.out and secret not in out.err
        for folder in folders:
            for path in Path(folder).rglob("*"):
                assert not path.is_file() or secret.encode() not in path.read_bytes(), path


def assert_private_data_stays_home(files: dict, model_dir: Path, unseen_text: Path):
    """Uploaded files carry no local path, no training file name and no line of the training text."""
    blob = b"\n".join(files.values())
    for private in (str(model_dir), str(unseen_text), unseen_text.name, str(ROOT)):
        assert private.encode() not in blob, private
    lines = [line.strip() for line in unseen_text.read_text(encoding="utf-8").splitlines() if len(line.strip()) > 15]
    assert lines and not any(line[:15].encode() in blob for line in lines)


def test_push_lora_of_local_base_defaults_to_merged(hub, lora_out, unseen_text, caplog, capsys):
    url = push(settings(hub, lora_out, "my-model"), token=TOKEN)
    assert url == f"{hub.url}/alice/my-model"
    assert "alice/my-model" in hub.state.repos
    files = hub.files["alice/my-model"]
    assert set(files) == REPO_FILES | {"model.safetensors"}, sorted(files)
    assert json.loads(files["metrics.json"])["base_model"] == "tiny-japanese-gpt2"
    config = json.loads(files["training_config.json"])
    assert config["method"] == "lora" and config["data_entries"] == 1 and "data" not in config and "out" not in config
    card = card_of(files)
    data = card.data.to_dict()
    assert data["language"] == "ja" and data["pipeline_tag"] == "text-generation"
    assert data["library_name"] == "transformers" and data["license"] == "apache-2.0"
    assert "base_model" not in data and {"japanese", "lora", "merged-lora"} <= set(data["tags"])
    assert "Hub にはありません" in card.text and "not on the Hub" in card.text
    assert "add_special_tokens=False" in card.text and "English summary" in card.text
    assert_private_data_stays_home(files, lora_out, unseen_text)
    assert_nothing_leaks(hub, caplog, capsys, lora_out)


def test_push_both_names_the_hub_base(hub, lora_out, caplog, capsys):
    push(settings(hub, lora_out, "team/both", what="both", base_model="rinna/japanese-gpt2-xsmall"), token=TOKEN)
    files = hub.files["team/both"]
    assert set(files) == REPO_FILES | {"model.safetensors", "adapter/adapter_model.safetensors",
                                       "adapter/adapter_config.json"}
    adapter = json.loads(files["adapter/adapter_config.json"])
    assert adapter["base_model_name_or_path"] == "rinna/japanese-gpt2-xsmall"
    card = card_of(files)
    assert card.data.base_model == "rinna/japanese-gpt2-xsmall" and card.data.license == "mit"
    assert "T5Tokenizer" in card.text and 'subfolder="adapter"' in card.text
    assert_nothing_leaks(hub, caplog, capsys, lora_out)


def test_push_adapter_of_local_base_names_no_local_path(hub, lora_out, unseen_text, caplog, capsys):
    push(settings(hub, lora_out, "adapter-only", what="adapter", private=True), token=TOKEN)
    files = hub.files["alice/adapter-only"]
    assert set(files) == (REPO_FILES - {"config.json", "generation_config.json"}) | {
        "adapter_model.safetensors", "adapter_config.json"}
    assert hub.state.repos["alice/adapter-only"]["private"]
    assert json.loads(files["adapter_config.json"])["base_model_name_or_path"] == "tiny-japanese-gpt2"
    card = card_of(files)
    assert card.data.library_name == "peft" and "PeftModel.from_pretrained" in card.text
    assert_private_data_stays_home(files, lora_out, unseen_text)
    assert_nothing_leaks(hub, caplog, capsys, lora_out)


def test_push_full_model_twice_to_the_same_repo(hub, full_out, unseen_text, caplog, capsys):
    for _ in range(2):   # the second push finds the repo already there (exist_ok) and commits again
        url = push(settings(hub, full_out, "alice/full"), token=TOKEN)
    assert url.endswith("/alice/full") and len(hub.state.commits) == 2
    files = hub.files["alice/full"]
    assert set(files) == REPO_FILES | {"model.safetensors"}
    assert files["model.safetensors"] == (full_out / "model.safetensors").read_bytes()
    assert card_of(files).data.library_name == "transformers"
    assert not hub.state.unexpected
    assert_private_data_stays_home(files, full_out, unseen_text)
    assert_nothing_leaks(hub, caplog, capsys, full_out)


def test_full_run_has_no_adapter_to_push(hub, full_out):
    with pytest.raises(NotATrainedModel) as err:
        push(settings(hub, full_out, "x", what="adapter"), token=TOKEN)
    assert err.value.message_ja


@pytest.mark.parametrize("case", ["no-token", "bad-token", "read-token", "fine-grained-no-write", "not-yours",
                                  "other-namespace", "bad-name", "double-dash", "offline", "unreachable"])
def test_errors_are_specific(case, hub, full_out, monkeypatch, tmp_path, caplog, capsys):
    import huggingface_hub.constants as constants
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "no-tokens"))
    token, repo, endpoint = TOKEN, "fine", hub.url
    expected = {"no-token": NotLoggedIn, "bad-token": NotLoggedIn, "read-token": TokenLacksWrite,
                "fine-grained-no-write": TokenLacksWrite, "not-yours": RepoNotYours, "other-namespace": RepoNotYours,
                "bad-name": InvalidRepoName, "double-dash": InvalidRepoName, "offline": HubUnreachable,
                "unreachable": HubUnreachable}[case]
    if case == "no-token":
        token = None
    elif case == "bad-token":
        token = "hf_TESTnotAValidToken0000SECRET"
    elif case == "read-token":
        token = READ_TOKEN
    elif case == "fine-grained-no-write":
        token = FINE_TOKEN
    elif case == "not-yours":
        repo = "bob/taken"
    elif case == "other-namespace":
        repo = "someone-else/new-model"
    elif case == "bad-name":
        repo = "my model!"
    elif case == "double-dash":
        repo = "my--model"
    elif case == "offline":
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    elif case == "unreachable":
        endpoint = unused_local_url()
    with pytest.raises(expected) as err:
        push(PushSettings(model_dir=str(full_out), repo=repo, endpoint=endpoint), token=token)
    assert isinstance(err.value, FinetuneError)
    assert re.search(r"[ぁ-んァ-ン一-龥]", err.value.message_ja), err.value.message_ja
    assert "\n" not in str(err.value)
    if expected is HubUnreachable:
        assert "zip" in str(err.value) and "zip" in err.value.message_ja
    assert not hub.files
    logs = "\n".join(r.getMessage() for r in caplog.records) + "".join(capsys.readouterr())
    assert token is None or token not in logs and token not in str(err.value)


def unused_local_url() -> str:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_settings_are_validated(full_out):
    with pytest.raises(ValueError, match="what"):
        PushSettings(model_dir=str(full_out), repo="x", what="weights")
    with pytest.raises(InvalidRepoName):
        PushSettings(model_dir=str(full_out), repo="  ")
    with pytest.raises(NotATrainedModel):
        model_folder(ROOT / "tests")


def cli(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "finetune", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env=env)


def online_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN")}
    return {**env, **extra}


def test_cli_push_against_the_stub(hub, full_out, tmp_path):
    env = online_env(MY_HUB_TOKEN=TOKEN, HF_HOME=str(tmp_path / "hf-home"))
    result = cli("push", "--model", full_out, "--repo", "cli-model", "--token-env", "MY_HUB_TOKEN",
                 "--endpoint", hub.url, "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["url"] == f"{hub.url}/alice/cli-model"
    assert "README.md" in hub.files["alice/cli-model"]
    refused = cli("push", "--model", full_out, "--repo", "cli-model", "--token-env", "MY_HUB_TOKEN",
                  "--endpoint", hub.url, env={**env, "MY_HUB_TOKEN": READ_TOKEN})
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    for result in (result, refused):
        for secret in SECRETS:
            assert secret not in result.stdout + result.stderr
    for path in (tmp_path / "hf-home").rglob("*"):
        assert not path.is_file() or not any(s.encode() in path.read_bytes() for s in SECRETS)


def test_cli_push_without_the_token_variable_exits_2(full_out):
    result = cli("push", "--model", full_out, "--repo", "x", "--token-env", "NO_SUCH_TOKEN_VARIABLE",
                 env=online_env())
    assert result.returncode == 2 and "NO_SUCH_TOKEN_VARIABLE" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def unpack(zip_path: Path, into: Path) -> Path:
    with zipfile.ZipFile(zip_path) as archive:
        names = archive.namelist()
        assert {n.split("/")[0] for n in names} == {zip_path.stem}
        assert not any(n.endswith(("progress.jsonl", "STOP")) or "checkpoint" in n for n in names)
        archive.extractall(into)
    return into / zip_path.stem


def run_card_snippet(folder: Path, base: str, capsys) -> str:
    """Execute the card's usage snippet against the unpacked folder; return what it printed."""
    text = (folder / "README.md").read_text(encoding="utf-8")
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    code = re.sub(r'repo = "[^"]*"', f"repo = {str(folder)!r}", code)
    code = code.replace('"path/to/tiny-japanese-gpt2"', repr(base))
    capsys.readouterr()
    exec(compile(code, "card-snippet", "exec"), {})
    return capsys.readouterr().out


def test_export_full_loads_with_plain_transformers(full_out, tmp_path, tiny_model, capsys):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    folder = unpack(export_zip(full_out, tmp_path / "my-full.zip"), tmp_path / "x")
    model = AutoModelForCausalLM.from_pretrained(str(folder))
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    ids = tokenizer("灯台の", add_special_tokens=False, return_tensors="pt").input_ids
    assert model.generate(ids, max_new_tokens=5, do_sample=False).shape[1] > ids.shape[1]
    printed = run_card_snippet(folder, tiny_model, capsys)
    assert printed.startswith("今日は") and len(printed.strip()) > len("今日は")


def test_export_lora_adapter_loads_with_peft(lora_out, tmp_path, tiny_model, capsys):
    from peft import AutoPeftModelForCausalLM
    folder = unpack(export_zip(lora_out, tmp_path / "my-lora.zip"), tmp_path / "x")
    assert (folder / "adapter_model.safetensors").is_file() and not (folder / "model.safetensors").exists()
    model = AutoPeftModelForCausalLM.from_pretrained(str(folder))
    assert model.generate(input_ids=torch.tensor([[5, 6, 7]]), max_new_tokens=3, do_sample=False).shape[1] > 3
    assert run_card_snippet(folder, tiny_model, capsys).startswith("今日は")


def test_export_lora_merged_equals_the_adapter(lora_out, tmp_path, capsys):
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoModelForCausalLM
    result = cli("export", "--model", lora_out, "--out", tmp_path / "merged.zip", "--merge", "--json")
    assert result.returncode == 0, result.stderr
    folder = unpack(Path(json.loads(result.stdout)["zip"]), tmp_path / "x")
    assert not (folder / "adapter_config.json").exists()
    merged = AutoModelForCausalLM.from_pretrained(str(folder)).eval()
    adapter = AutoPeftModelForCausalLM.from_pretrained(str(lora_out)).eval()
    ids = torch.tensor([[5, 60, 7, 300, 9, 12]])
    with torch.no_grad():
        assert torch.allclose(merged(ids).logits, adapter(input_ids=ids).logits, atol=1e-4)
    assert run_card_snippet(folder, "", capsys).startswith("今日は")


def test_repaired_tokenizer_survives_a_save_and_plain_reload(rinna_like, tmp_path):
    """The card's claim: a repaired rinna-style tokenizer saved by a run loads back, with plain
    AutoTokenizer, as the repaired one (sentencepiece parity), not as transformers' T5Tokenizer."""
    from transformers import AutoTokenizer
    from finetune.tokens import check_parity, find_spm_file, load_tokenizer
    tokenizer, parity = load_tokenizer(str(rinna_like))
    assert parity.status == "repaired"
    tokenizer.save_pretrained(str(tmp_path))
    reloaded = AutoTokenizer.from_pretrained(str(tmp_path))
    assert check_parity(reloaded, find_spm_file(rinna_like), lowercase=True).status == "ok"


def test_card_names_a_qlora_adapter_qlora(tmp_path):
    from finetune.card import adapter_label, card_metadata, intro_en, settings_rows
    from finetune.share import ModelFolder
    folder = ModelFolder(tmp_path, "lora", "rinna/japanese-gpt2-xsmall", "rinna/japanese-gpt2-xsmall", None,
                         {"method": "qlora", "lora": {"r": 8, "alpha": 16, "dropout": 0.0}}, {})
    assert adapter_label(folder) == "QLoRA" and "(QLoRA)" in intro_en(folder)
    assert settings_rows(folder)[0][2] == "QLoRA" and "qlora" in card_metadata(folder, "adapter", "mit").tags
    lora = ModelFolder(tmp_path, "lora", None, "x", None, {"method": "lora"}, {})
    assert adapter_label(lora) == "LoRA" and "(LoRA)" in intro_en(lora)
