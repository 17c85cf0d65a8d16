"""End to end: fine-tune the embedded model on text it has never seen, full and LoRA."""
import json
import threading

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from finetune.train import TrainSettings, train

REQUIRED = ["base_model", "method", "train_tokens", "heldout_tokens", "steps", "seconds",
            "train_tokens_per_second", "heldout_loss_before", "heldout_loss_after",
            "heldout_perplexity_before", "heldout_perplexity_after"]


def run(tiny_model, unseen_text, out, **overrides):
    settings = TrainSettings(model=tiny_model, data=[str(unseen_text)], out=str(out), max_steps=30,
                             block_size=64, batch_size=8, device="cpu", seed=0, **overrides)
    return train(settings)


@pytest.fixture(scope="module")
def full_run(tiny_model, unseen_text, tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    return out, run(tiny_model, unseen_text, out, lr=1e-3)


@pytest.fixture(scope="module")
def lora_run(tiny_model, unseen_text, tmp_path_factory):
    out = tmp_path_factory.mktemp("lora")
    return out, run(tiny_model, unseen_text, out, method="lora", lr=1e-2)


@pytest.mark.parametrize("which", ["full_run", "lora_run"])
def test_heldout_perplexity_drops_and_metrics_are_written(which, request):
    out, metrics = request.getfixturevalue(which)
    on_disk = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert on_disk == metrics
    for key in REQUIRED:
        assert key in metrics, key
    assert metrics["steps"] == 30
    assert metrics["heldout_tokens"] >= 64 and metrics["train_tokens"] > metrics["heldout_tokens"]
    # 30 steps on 2,600 tokens: full fine-tuning cuts perplexity by a quarter or more; LoRA on
    # GPT-2's attention (the default target) moves less in so few steps.
    margin = 0.9 if metrics["method"] == "full" else 0.95
    assert metrics["heldout_perplexity_after"] < margin * metrics["heldout_perplexity_before"]
    config = json.loads((out / "training_config.json").read_text(encoding="utf-8"))
    assert config["method"] == metrics["method"] and config["block_size"] == 64


def test_progress_log_has_steps_and_evals(full_run):
    out, _ = full_run
    events = [json.loads(line) for line in (out / "progress.jsonl").read_text(encoding="utf-8").splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done"
    steps = [e for e in events if e["event"] == "step"]
    assert steps and all({"loss", "tokens_per_second", "eta_seconds", "step"} <= e.keys() for e in steps)
    assert sum(e["event"] == "eval" for e in events) >= 2


def test_full_output_loads_in_plain_transformers(full_run):
    out, _ = full_run
    assert (out / "model.safetensors").is_file() and not (out / "training_args.bin").exists()
    model = AutoModelForCausalLM.from_pretrained(str(out))
    tok = AutoTokenizer.from_pretrained(str(out))
    ids = tok("灯台の", return_tensors="pt")["input_ids"]
    assert ids[0, -1] != tok.eos_token_id
    torch.manual_seed(0)
    new = model.generate(ids, max_new_tokens=10, do_sample=False)
    assert new.shape[1] > ids.shape[1]


def test_lora_output_loads_with_peft(lora_run):
    from peft import AutoPeftModelForCausalLM
    out, _ = lora_run
    assert (out / "adapter_model.safetensors").is_file() and not (out / "model.safetensors").exists()
    model = AutoPeftModelForCausalLM.from_pretrained(str(out))
    ids = torch.tensor([[5, 6, 7]])
    assert model.generate(input_ids=ids, max_new_tokens=5, do_sample=False).shape[1] > 3


def test_stop_event_ends_training_with_a_usable_model(tiny_model, unseen_text, tmp_path):
    stop = threading.Event()

    def stop_after_three(record):
        if record["event"] == "step" and record["step"] >= 3:
            stop.set()

    settings = TrainSettings(model=tiny_model, data=[str(unseen_text)], out=str(tmp_path), max_steps=200,
                             block_size=64, device="cpu", eval_steps=1000)
    from finetune.train import train as run_training
    metrics = run_training(settings, stop=stop, on_event=stop_after_three)
    assert metrics["stopped_early"] and metrics["steps"] < 200
    assert AutoModelForCausalLM.from_pretrained(str(tmp_path)) is not None


def test_settings_are_validated():
    with pytest.raises(ValueError, match="method"):
        TrainSettings(method="adapter")
    with pytest.raises(ValueError, match="batch size"):
        TrainSettings(batch_size=-1)
    with pytest.raises(ValueError, match="block size"):
        TrainSettings(block_size=4)
    with pytest.raises(ValueError, match="compile"):
        TrainSettings(compile="fast")
    with pytest.raises(ValueError, match="dropout"):
        TrainSettings(dropout=1.0)


def test_dropout_override_reaches_every_dropout_layer(tiny_model):
    import torch
    from finetune.train import set_dropout
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    layers = [m for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    assert layers and any(m.p > 0 for m in layers)
    set_dropout(model, 0.0)
    assert all(m.p == 0.0 for m in layers)
    model.train()
    ids = torch.randint(4, 100, (2, 16))
    assert torch.equal(model(ids).logits, model(ids).logits)  # no randomness left in training mode
    with pytest.raises(ValueError, match="held-out"):
        TrainSettings(heldout=0.95)


def test_sigkill_then_resume_continues_at_the_same_step(tiny_model, unseen_text, tmp_path):
    """Kill a CLI run after its first checkpoint, then `train --resume`: it goes on from that step
    to the planned total, and the result loads."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from conftest import ROOT
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "finetune", "train", "--model", tiny_model, "--data", str(unseen_text),
           "--out", str(out), "--max-steps", "40", "--block-size", "64", "--device", "cpu",
           "--save-steps", "4", "--eval-steps", "100"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = out / "checkpoints" / "checkpoint-4" / "trainer_state.json"
    deadline = time.time() + 180
    while not state.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)  # let the checkpoint finish writing
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert state.exists() and not (out / "metrics.json").exists()
    assert not (out / "model.safetensors").exists()  # never a half-written model in the output folder

    result = subprocess.run([sys.executable, "-m", "finetune", "train", "--resume", str(out), "--json"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["steps"] == 40
    events = [json.loads(x) for x in (out / "progress.jsonl").read_text(encoding="utf-8").splitlines()]
    resume = [e for e in events if e["event"] == "resume"]
    assert resume and resume[0]["checkpoint"].endswith("checkpoint-4")
    steps_after = [e["step"] for e in events[events.index(resume[0]):] if e["event"] == "step"]
    assert steps_after[0] > 4 and steps_after[-1] == 40
    assert AutoModelForCausalLM.from_pretrained(str(out)) is not None


def test_nan_loss_stops_with_a_clear_message_and_no_model(tiny_model, unseen_text, tmp_path):
    """A model whose weights hold NaN: training stops at the first logged step, names the likely
    causes, logs an error event, and leaves no final model behind."""
    import shutil

    from safetensors.torch import load_file, save_file

    from finetune.train import Diverged
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model, broken)
    weights = load_file(broken / "model.safetensors")
    name = next(k for k in weights if k.endswith("ln_f.weight"))
    weights[name] = torch.full_like(weights[name], float("nan"))
    save_file(weights, broken / "model.safetensors", metadata={"format": "pt"})
    out = tmp_path / "out"
    settings = TrainSettings(model=str(broken), data=[str(unseen_text)], out=str(out), max_steps=20,
                             block_size=64, device="cpu", save_steps=5)
    with pytest.raises(Diverged, match="learning rate"):
        train(settings)
    assert not (out / "model.safetensors").exists() and not (out / "metrics.json").exists()
    assert not list(out.glob("checkpoints/checkpoint-*"))  # the veto came before the first checkpoint
    last = json.loads((out / "progress.jsonl").read_text(encoding="utf-8").splitlines()[-1])
    assert last["event"] == "error" and "NaN" in last["message"]
