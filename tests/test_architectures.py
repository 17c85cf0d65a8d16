"""GPT-2, GPT-NeoX and Llama-family models: tiny random ones with a sentencepiece tokenizer (built
offline), trained a few steps through the CLI, full and LoRA; the output loads in plain transformers
or peft and tokenizes like its base. QLoRA's refusal where bitsandbytes cannot run. Tokenizer files
travel from local and Hub-cache bases."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import ROOT

ARCHITECTURES = ("gpt2", "gpt_neox", "llama")
PROBE = "吾輩は猫である。ABC 鬱蒼とした森"


def tiny_config(arch: str, vocab: int):
    """A tiny random model of `arch` for a rinna-like tokenizer (unk 0, bos 1, eos 2, pad 3)."""
    from transformers import GPT2Config, GPTNeoXConfig, LlamaConfig
    ids = dict(bos_token_id=1, eos_token_id=2, pad_token_id=3)
    if arch == "gpt2":
        return GPT2Config(vocab_size=vocab, n_embd=64, n_layer=2, n_head=4, n_positions=256, **ids)
    if arch == "gpt_neox":
        return GPTNeoXConfig(vocab_size=vocab, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                             intermediate_size=256, max_position_embeddings=256, tie_word_embeddings=False, **ids)
    return LlamaConfig(vocab_size=vocab, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, intermediate_size=192, max_position_embeddings=256, **ids)


def build_base(folder: Path, arch: str, tokenizer_folder: Path) -> Path:
    """A model folder: the rinna-like tokenizer files and a randomly initialised `arch` model."""
    from transformers import AutoModelForCausalLM
    shutil.copytree(tokenizer_folder, folder)
    import sentencepiece as spm
    vocab = spm.SentencePieceProcessor(model_file=str(folder / "spiece.model")).get_piece_size()
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(tiny_config(arch, vocab)).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def bases(rinna_like, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bases")
    return {arch: build_base(root / arch, arch, rinna_like) for arch in ARCHITECTURES}


def cli(*args) -> tuple[int, dict]:
    """Run `python -m finetune ...` in this process; (exit code, JSON output)."""
    import contextlib
    import io

    from finetune.cli import main
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main([*args, "--json"])
    return code, json.loads(stdout.getvalue()) if code == 0 else {}


def train_cli(base: Path, text: Path, out: Path, method: str, *extra) -> dict:
    lr = "3e-3" if method == "full" else "1e-2"
    code, metrics = cli("train", "--model", str(base), "--data", str(text), "--out", str(out), "--method", method,
                        "--max-steps", "8", "--block-size", "32", "--batch-size", "4", "--lr", lr, "--device", "cpu",
                        "--eval-steps", "100", *extra)
    assert code == 0
    return metrics


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_full_fine_tune_of_each_architecture(arch, bases, unseen_text, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    out = tmp_path / "run"
    metrics = train_cli(bases[arch], unseen_text, out, "full")
    assert metrics["heldout_loss_after"] < metrics["heldout_loss_before"]
    assert metrics["trainable_parameters"] == metrics["total_parameters"]
    model = AutoModelForCausalLM.from_pretrained(str(out))
    assert model.config.model_type == arch
    tokenizer = AutoTokenizer.from_pretrained(str(out))
    ids = tokenizer("吾輩は", return_tensors="pt", add_special_tokens=False)["input_ids"]
    assert model.generate(ids, max_new_tokens=4, do_sample=False).shape[1] > ids.shape[1]
    assert (out / "spiece.model").read_bytes() == (bases[arch] / "spiece.model").read_bytes()
    for name in ("tokenizer_config.json", "special_tokens_map.json"):  # every tokenizer file the base had
        assert (out / name).is_file(), name
    assert json.loads((out / "tokenizer_config.json").read_text(encoding="utf-8"))["do_lower_case"] is True


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_lora_of_each_architecture_adapts_every_linear_layer(arch, bases, unseen_text, tmp_path):
    """LoRA with gradient checkpointing on (non-reentrant, frozen embeddings): the loss still drops."""
    from peft import AutoPeftModelForCausalLM
    out = tmp_path / "run"
    metrics = train_cli(bases[arch], unseen_text, out, "lora", "--gradient-checkpointing", "on")
    assert metrics["gradient_checkpointing"] is True
    assert metrics["heldout_loss_after"] < metrics["heldout_loss_before"]
    assert 0 < metrics["trainable_parameters"] < metrics["total_parameters"]
    adapter = json.loads((out / "adapter_config.json").read_text(encoding="utf-8"))
    expected = {"gpt2": {"c_attn", "c_proj", "c_fc"},
                "gpt_neox": {"query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"},
                "llama": {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}}[arch]
    assert {name.rsplit(".", 1)[-1] for name in adapter["target_modules"]} == expected  # no output layer
    model = AutoPeftModelForCausalLM.from_pretrained(str(out))
    ids = torch.tensor([[5, 6, 7]])
    assert model.generate(input_ids=ids, max_new_tokens=3, do_sample=False).shape[1] > 3
    code, view = cli("tokenize", "--model", str(out), PROBE)
    _, base_view = cli("tokenize", "--model", str(bases[arch]), PROBE)
    assert code == 0 and view["ids"] == base_view["ids"] and view["parity"] in ("ok", "repaired")


def test_lora_targets_narrow_the_adapter(bases, unseen_text, tmp_path):
    out = tmp_path / "run"
    narrow = train_cli(bases["llama"], unseen_text, out, "lora", "--lora-targets", "q_proj,v_proj")
    adapter = json.loads((out / "adapter_config.json").read_text(encoding="utf-8"))
    assert set(adapter["target_modules"]) == {"q_proj", "v_proj"}
    assert narrow["trainable_parameters"] == 2 * (8 * (64 + 64) + 8 * (64 + 32))  # 2 layers; q: 64->64, v: 64->32 (GQA)


def test_an_unknown_lora_target_is_one_line_naming_the_real_ones(bases, unseen_text, tmp_path, capsys):
    from finetune.cli import main
    code = main(["train", "--model", str(bases["gpt_neox"]), "--data", str(unseen_text), "--out", str(tmp_path / "r"),
                 "--method", "lora", "--lora-targets", "c_attn", "--max-steps", "1", "--device", "cpu"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "c_attn" in err and "query_key_value" in err and "dense_h_to_4h" in err


def run_module(*args, env=None) -> subprocess.CompletedProcess:
    import os
    return subprocess.run([sys.executable, "-m", "finetune", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})})


@pytest.mark.parametrize("device", ["cpu", "auto"])
def test_qlora_without_a_gpu_is_one_line_and_exit_code_2(device, tiny_model, unseen_text, tmp_path):
    result = run_module("train", "--model", tiny_model, "--data", str(unseen_text), "--out", str(tmp_path / "r"),
                        "--method", "qlora", "--device", device, "--max-steps", "1",
                        env={"CUDA_VISIBLE_DEVICES": ""})
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert "QLoRA" in result.stderr and "CUDA GPU" in result.stderr and "--method lora" in result.stderr
    assert not (tmp_path / "r" / "adapter_model.safetensors").exists()


def test_qlora_without_bitsandbytes_says_how_to_install_it(monkeypatch):
    import importlib.util

    from finetune import models
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "bitsandbytes" else real(name, *a))
    assert "scripts/requirements-gpu.txt" in models.qlora_problem("cuda")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "bitsandbytes" else real(name, *a))
    assert models.qlora_problem("cuda") is None
    with pytest.raises(models.QLoRAUnavailable, match="CUDA GPU"):
        models.load_model(models.resolve_source(str(ROOT / "assets" / "tiny-japanese-gpt2")), "cpu", quantized=True)


# ---------------------------------------------------------------------------------------------
# Tokenizer files travel

def hub_cache_with(model_folder: Path, cache: Path, repo: str) -> Path:
    """A Hugging Face Hub cache (HF_HUB_CACHE layout) holding `model_folder` as `repo`'s main revision."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    root = cache / f"models--{repo.replace('/', '--')}"
    snapshot = root / "snapshots" / commit
    shutil.copytree(model_folder, snapshot)
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(commit, encoding="utf-8")
    return snapshot


def test_a_run_from_a_hub_base_carries_its_sentencepiece_model(bases, unseen_text, tmp_path):
    cache = tmp_path / "hub"
    snapshot = hub_cache_with(bases["gpt2"], cache, "someone/tiny-ja")
    env = {"HF_HUB_CACHE": str(cache), "HF_HOME": str(tmp_path / "hf-home")}
    out = tmp_path / "run"
    result = run_module("train", "--model", "someone/tiny-ja", "--data", str(unseen_text), "--out", str(out),
                        "--method", "lora", "--max-steps", "2", "--block-size", "32", "--device", "cpu", env=env)
    assert result.returncode == 0, result.stderr
    for name in ("spiece.model", "tokenizer_config.json", "special_tokens_map.json"):
        assert (out / name).is_file(), name
    assert (out / "spiece.model").read_bytes() == (snapshot / "spiece.model").read_bytes()
    view = run_module("tokenize", "--model", str(out), "--json", PROBE, env=env)
    base_view = run_module("tokenize", "--model", "someone/tiny-ja", "--json", PROBE, env=env)
    assert json.loads(view.stdout)["parity"] in ("ok", "repaired")
    assert json.loads(view.stdout)["ids"] == json.loads(base_view.stdout)["ids"]
    exported = run_module("export", "--model", str(out), "--out", str(tmp_path / "run.zip"), env=env)
    assert exported.returncode == 0, exported.stderr
    import zipfile
    assert "run/spiece.model" in zipfile.ZipFile(tmp_path / "run.zip").namelist()


def test_hub_tokenizer_files_come_from_the_cache_or_a_download(tmp_path, monkeypatch):
    """Cached files are used as they are; a file the cache does not know is downloaded when the Hub
    was reachable; a file the repo does not have is skipped."""
    import huggingface_hub
    from huggingface_hub.errors import EntryNotFoundError

    from finetune import train as train_module
    from finetune.models import ModelSource
    cached = tmp_path / "tokenizer_config.json"
    cached.write_text("{}", encoding="utf-8")
    fetched = tmp_path / "spiece.model"
    fetched.write_bytes(b"spm")
    missing = object()  # what huggingface_hub returns for a file it knows the repo lacks
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache",
                        lambda repo, name: str(cached) if name == "tokenizer_config.json"
                        else missing if name == "tokenizer.json" else None)

    def download(repo, name):
        if name == "spiece.model":
            return str(fetched)
        raise EntryNotFoundError(f"{name} not in {repo}")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    online = ModelSource("someone/model", "someone/model", local_files_only=False)
    assert train_module.base_tokenizer_files(online) == {"tokenizer_config.json": cached, "spiece.model": fetched}
    offline = ModelSource("someone/model", "someone/model", local_files_only=True)
    assert train_module.base_tokenizer_files(offline) == {"tokenizer_config.json": cached}
