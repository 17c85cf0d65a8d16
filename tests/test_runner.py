"""The studio's training job after an app restart: runs that began and never ended are found, told
apart from finished ones and from runs a live process is training, and resumed from their checkpoint."""
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import assert_trained_model, crashed_run
from finetune.errors import FinetuneError
from finetune.runner import TrainingJob, interrupted_runs, is_training


def fake_run(folder: Path, *events: str) -> Path:
    """A run folder whose progress.jsonl holds just these events (no checkpoint)."""
    folder.mkdir(parents=True)
    fields = {"start": dict(model="m", method="full", device="cpu", precision="fp32", train_tokens=1,
                            heldout_tokens=1, max_steps=10),
              "step": dict(step=3, max_steps=10, loss=1.0, tokens_per_second=1.0, eta_seconds=1.0)}
    lines = [json.dumps({"event": e, **fields.get(e, {"message": "x", "steps": 3})}) for e in events]
    (folder / "progress.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def events(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "progress.jsonl").read_text(encoding="utf-8").splitlines()]


def test_after_a_restart_an_interrupted_run_is_found_and_resumed(tiny_model, unseen_text, tmp_path):
    runs = tmp_path / "runs"
    crashed = crashed_run(tiny_model, unseen_text, runs / "run-crashed")
    fake_run(runs / "run-done", "start", "step", "done")
    fake_run(runs / "run-failed", "start", "step", "error")
    early = fake_run(runs / "run-early", "start", "step")          # died before its first checkpoint

    job = TrainingJob(runs)                                        # a new app on the same runs folder
    found = {run.folder.name: run for run in job.interrupted()}
    assert set(found) == {"run-crashed", "run-early"}
    assert found["run-crashed"].resumable and found["run-crashed"].checkpoint.endswith("checkpoint-4")
    assert (found["run-crashed"].step, found["run-crashed"].max_steps) == (6, 8)
    assert not found["run-early"].resumable
    with pytest.raises(FinetuneError, match="before its first checkpoint"):
        job.resume(early)
    with pytest.raises(FinetuneError, match="not an interrupted run"):
        job.resume(runs / "run-done")
    with pytest.raises(FinetuneError, match="not an interrupted run"):
        job.resume(tmp_path / "elsewhere")

    status = job.resume()                                          # the newest resumable one
    assert status.out == str(crashed) and status.command.endswith(f"--resume {crashed}")
    assert [run.folder.name for run in job.interrupted()] == ["run-early"]  # not while it trains
    final = job.wait(300)
    assert final.state == "done", final.error
    assert final.metrics["steps"] == 8
    resumed = [e for e in events(crashed) if e["event"] == "resume"]
    assert resumed and resumed[0]["checkpoint"].endswith("checkpoint-4")
    assert_trained_model(crashed, tiny_model)
    assert [run.folder.name for run in interrupted_runs(runs)] == ["run-early"]
    assert not is_training(crashed)                                # the lock went with the thread


@pytest.mark.skipif(sys.platform == "win32", reason="flock")
def test_a_run_that_a_live_process_trains_is_not_interrupted(tmp_path):
    folder = fake_run(tmp_path / "runs" / "run-live", "start", "step")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys, time\n"
         "f = open(sys.argv[1], 'a'); fcntl.flock(f, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(120)",
         str(folder / ".training.lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert is_training(folder) and interrupted_runs(tmp_path / "runs") == []
        with pytest.raises(FinetuneError):
            TrainingJob(tmp_path / "runs").resume(folder)
    finally:
        holder.kill()
        holder.wait()
    assert [run.folder for run in interrupted_runs(tmp_path / "runs")] == [folder]  # its process is gone


def running(pid: int) -> bool:
    """Is the process alive (not gone, not a zombie waiting to be reaped)?"""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(sys.platform != "linux", reason="prctl(PR_SET_PDEATHSIG)")
def test_a_killed_front_end_leaves_an_interrupted_run_not_a_training_orphan(tiny_model, unseen_text, tmp_path):
    """The studio is killed while its job trains: the training process ends with it, and the next
    app finds the run interrupted (resumable from its checkpoint), not held by an unseen process."""
    import os
    import signal
    runs = tmp_path / "runs"
    front_end = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\n"
        "from finetune.runner import TrainingJob\n"
        "from finetune.train import TrainSettings\n"
        f"job = TrainingJob({str(runs)!r})\n"
        f"job.start(TrainSettings(model={tiny_model!r}, data=[{str(unseen_text)!r}], max_steps=2000, "
        "block_size=64, batch_size=8, device='cpu', seed=0, save_steps=2, eval_steps=1000))\n"
        "while job.status().step < 3: time.sleep(0.2)\n"
        "print('training', flush=True)\n"
        "time.sleep(600)\n")], stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parent.parent)
    try:
        assert front_end.stdout.readline().strip() == "training"
        workers = [int(child) for task in Path(f"/proc/{front_end.pid}/task").glob("*/children")
                   for child in task.read_text().split()]
        assert len(workers) == 1
    finally:
        front_end.kill()
        front_end.wait()
    for _ in range(300):                       # the worker is told at once; give it time to go
        found = interrupted_runs(runs)                 # its lock is free: nothing holds the run any more
        if found and not running(workers[0]):
            break
        time.sleep(0.1)
    else:
        if running(workers[0]):
            os.kill(workers[0], signal.SIGKILL)
        raise AssertionError(f"the training process outlived the front end that started it: {found}")
    assert found[0].resumable and found[0].step >= 3


def test_command_line_gives_qlora_its_lora_flags_and_the_memory_settings():
    import shlex
    from finetune.lora import LoraSettings
    from finetune.runner import command_line
    from finetune.train import TrainSettings
    settings = TrainSettings(data=["d"], out="o", model="m", method="qlora", batch_size=8, micro_batch_size=2,
                             grad_accum=4, gradient_checkpointing="on", fused_loss="off",
                             lora=LoraSettings(r=16))
    args = shlex.split(command_line(settings))
    assert args[args.index("--method") + 1] == "qlora" and args[args.index("--lora-r") + 1] == "16"
    for flag, value in (("--micro-batch-size", "2"), ("--grad-accum", "4"), ("--gradient-checkpointing", "on"),
                        ("--fused-loss", "off")):
        assert args[args.index(flag) + 1] == value
    assert "--micro-batch-size" not in command_line(TrainSettings(data=["d"], out="o", model="m"))


def test_event_line_shows_memory_events():
    from finetune.runner import event_line
    assert event_line({"event": "memory", "message": "out of memory: batch 8 -> 4"}) == \
        "memory: out of memory: batch 8 -> 4"
