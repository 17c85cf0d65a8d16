"""End to end: fine-tune the embedded model on text it has never seen, full and LoRA."""
import json
import threading

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from conftest import assert_trained_model
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
    assert_trained_model(tmp_path, tiny_model)


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


# `python -m finetune` with two test hooks. HANG_AT_STEP=N: after logging step N the process makes no
# more progress and waits to be killed, so the kill lands at a known step, however fast the machine.
# OPTIMIZER_REPORT=FILE: when training returns, the optimizer's own step count goes to FILE.
HOOKED_CLI = r"""
import json, os, sys, threading
import transformers
from finetune import train as engine
from finetune.cli import main

hang_at = int(os.environ.get("HANG_AT_STEP", "0"))
write = engine.ProgressLog.write

def write_then_hang(self, event, **fields):
    write(self, event, **fields)
    if hang_at and event == "step" and fields["step"] >= hang_at:
        threading.Event().wait()

engine.ProgressLog.write = write_then_hang
trainer_train = transformers.Trainer.train

def train_and_report(self, *args, **kwargs):
    result = trainer_train(self, *args, **kwargs)
    steps = sorted({int(state["step"]) for state in self.optimizer.state.values()})
    with open(os.environ["OPTIMIZER_REPORT"], "w") as f:
        json.dump({"optimizer_steps": steps, "global_step": self.state.global_step}, f)
    return result

transformers.Trainer.train = train_and_report
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture
def started():
    """Processes a test starts; any still running when it ends (a failed test) is killed."""
    processes = []
    yield processes
    for proc in processes:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def hooked_cli(args, report, hang_at=0):
    """The CLI with HOOKED_CLI's hooks, started (not waited for)."""
    import os
    import subprocess
    import sys

    from conftest import ROOT
    env = os.environ | {"OPTIMIZER_REPORT": str(report), "HANG_AT_STEP": str(hang_at)}
    return subprocess.Popen([sys.executable, "-c", HOOKED_CLI, *map(str, args)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finished(proc) -> dict:
    """The metrics a CLI run printed (--json) once it has exited cleanly."""
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-3000:]
    return json.loads(stdout)


def events(out) -> list[dict]:
    path = out / "progress.jsonl"
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


def wait_for(condition, proc, what: str):
    """Poll `condition` until it holds; fail at once if the process exits first. The deadline only
    catches a hung test: nothing here depends on how fast the machine is."""
    import time
    deadline = time.monotonic() + 600
    while not condition():
        assert proc.poll() is None, f"the run exited before {what}: {proc.stderr.read()[-3000:]}"
        assert time.monotonic() < deadline, f"no {what} after 10 minutes"
        time.sleep(0.05)


def step_losses(records: list[dict]) -> dict[int, float]:
    return {e["step"]: e["loss"] for e in records if e["event"] == "step"}


def test_sigkill_then_resume_ends_where_an_uninterrupted_run_ends(tiny_model, unseen_text, tmp_path, started):
    """Kill a CLI run at step 6, after checkpoint-4 was written to the end, then `train --resume`:
    it goes on from step 4 with the optimizer state of step 4, and ends as the same run left alone
    ends: the same steps, the same optimizer step count, the same losses."""
    import os
    import signal

    from finetune.failures import is_complete
    from finetune.train import last_checkpoint
    flags = ["--model", tiny_model, "--data", unseen_text, "--max-steps", 12, "--block-size", 64,
             "--batch-size", 8, "--device", "cpu", "--seed", 0, "--save-steps", 4, "--eval-steps", 100, "--json"]
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    alone = hooked_cli(["train", "--out", whole, *flags], tmp_path / "whole.json")
    victim = hooked_cli(["train", "--out", killed, *flags], tmp_path / "killed.json", hang_at=6)
    started += [alone, victim]
    checkpoint = killed / "checkpoints" / "checkpoint-4"
    wait_for(lambda: is_complete(checkpoint), victim, "checkpoint-4's trainer_state.json (written last)")
    wait_for(lambda: 6 in step_losses(events(killed)), victim, "step 6")
    os.kill(victim.pid, signal.SIGKILL)
    victim.communicate()
    assert last_checkpoint(killed) == str(checkpoint)
    assert not (killed / "metrics.json").exists()
    assert not list(killed.glob("*.safetensors"))

    started.append(hooked_cli(["train", "--resume", killed, "--json"], tmp_path / "resumed.json"))
    resumed = finished(started[-1])
    reference = finished(alone)
    assert resumed["steps"] == reference["steps"] == 12
    optimizer = [json.loads((tmp_path / f"{run}.json").read_text()) for run in ("resumed", "whole")]
    assert optimizer[0] == optimizer[1] == {"optimizer_steps": [12], "global_step": 12}

    log = events(killed)
    resume = next(i for i, e in enumerate(log) if e["event"] == "resume")
    assert log[resume]["checkpoint"] == str(checkpoint)
    after = step_losses(log[resume:])
    expected = step_losses(events(whole))
    assert sorted(after) == [6, 8, 10, 12] and sorted(expected) == [2, 4, 6, 8, 10, 12]
    for step, loss in after.items():
        assert loss == pytest.approx(expected[step], rel=1e-3), step
    assert resumed["heldout_loss_after"] == pytest.approx(reference["heldout_loss_after"], rel=1e-4)
    assert_trained_model(killed, tiny_model)


def test_nan_after_a_checkpoint_writes_no_later_checkpoint_and_the_last_good_one_loads(
        tiny_model, unseen_text, tmp_path, monkeypatch):
    """The weights blow up in step 7 (as a learning rate far too high does): the log at step 8 shows
    the NaN loss, training stops there with the likely causes named, checkpoint-8 is never written
    (so rotation cannot delete checkpoint-4), and checkpoint-4 still loads with finite weights."""
    from transformers import Trainer

    from finetune.train import Diverged, last_checkpoint
    training_step = Trainer.training_step

    def diverging_step(self, model, *args, **kwargs):
        if self.state.global_step == 6:
            with torch.no_grad():
                next(model.parameters()).fill_(float("nan"))
        return training_step(self, model, *args, **kwargs)

    monkeypatch.setattr(Trainer, "training_step", diverging_step)
    out = tmp_path / "out"
    settings = TrainSettings(model=tiny_model, data=[str(unseen_text)], out=str(out), max_steps=12,
                             block_size=64, batch_size=8, device="cpu", seed=0, save_steps=4, eval_steps=100)
    with pytest.raises(Diverged) as err:
        train(settings)
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["checkpoint-4"]
    assert last_checkpoint(out) == str(out / "checkpoints" / "checkpoint-4")
    assert_trained_model(out / "checkpoints" / "checkpoint-4", tiny_model)
    assert "at step 8" in str(err.value) and "learning rate" in str(err.value)
    assert str(out / "checkpoints") in str(err.value)
    assert not (out / "model.safetensors").exists() and not (out / "metrics.json").exists()
    log = events(out)
    assert [e["step"] for e in log if e["event"] == "step"] == [2, 4, 6]  # the NaN step is not plotted
    assert log[-1]["event"] == "error" and "NaN" in log[-1]["message"]
