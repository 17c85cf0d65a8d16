"""Training processes made ahead of their run (finetune/workers.py, finetune/worker.py): a warm job's
next process waits with its imports done, trains the next run with the run folder's lock handed to
it, is replaced after the run, and never outlives its front end or waits on after being discarded."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import ROOT, UNSEEN
from finetune.runner import TrainingJob, is_training
from finetune.train import PROGRESS_FILE, TrainSettings
from finetune.workers import spawn_worker

IMPORTS = 120  # s: a fresh interpreter importing torch, transformers and peft on a busy 2-core machine


def until(predicate, what: str, seconds: float = IMPORTS):
    for _ in range(int(seconds * 20)):
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(what)


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with open(f"/proc/{pid}/stat") as f:   # a zombie (ended, not yet reaped) is gone too
        return f.read().rsplit(")", 1)[1].split()[0] == "Z"


def settings(tiny_model: str, **extra) -> TrainSettings:
    return TrainSettings(model=tiny_model, data=[str(UNSEEN)], max_steps=4, block_size=64, **extra)


def test_a_warm_job_trains_in_the_process_made_ahead_and_makes_the_next(tiny_model, tmp_path):
    job = TrainingJob(tmp_path / "runs", warm=True)
    try:
        until(lambda: job.workers.ready is not None, "no process was made ahead")
        ahead = job.workers.ready
        assert ahead.wait_ready(IMPORTS) and ahead.alive()   # imports done, waiting for a run
        status = job.start(settings(tiny_model))
        assert job.workers.ready is None                      # taken by the run
        out = Path(status.out)
        until(lambda: is_training(out), "the run folder's lock never reached the process")
        final = job.wait(IMPORTS)
        assert final.state == "done", final.error
        assert ahead.process.returncode == 0 and not ahead.folder.exists()  # it trained this run, then was cleaned up
        events = [json.loads(line) for line in (out / PROGRESS_FILE).read_text(encoding="utf-8").splitlines()]
        assert [e["step"] for e in events if e["event"] == "step"][-1] == 4
        assert not is_training(out)
        until(lambda: job.workers.ready is not None, "no process was made for the next run")
        assert job.workers.ready.process.pid != ahead.process.pid
    finally:
        job.workers.close()


def test_a_job_without_warm_makes_its_process_at_the_start(tiny_model, tmp_path):
    job = TrainingJob(tmp_path / "runs")
    time.sleep(0.5)
    assert job.workers.ready is None
    assert job.start(settings(tiny_model)).state == "running"
    assert job.wait(IMPORTS).state == "done"
    time.sleep(0.5)
    assert job.workers.ready is None   # nothing kept waiting


def test_a_discarded_process_ends_without_a_run_and_leaves_nothing(tmp_path):
    worker = spawn_worker()
    assert worker.wait_ready(IMPORTS)
    worker.channel.close()                        # what the front end going away looks like
    assert worker.process.wait(timeout=30) == 0   # ended by itself, quietly
    worker.discard()
    assert not worker.folder.exists()


def test_the_process_made_ahead_ends_with_its_front_end():
    """A killed studio leaves no training process waiting in the background."""
    front_end = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, tempfile, time\n"
         "from finetune.runner import TrainingJob\n"
         "job = TrainingJob(tempfile.mkdtemp(), warm=True)\n"
         "while job.workers.ready is None: time.sleep(0.05)\n"
         "assert job.workers.ready.wait_ready(120)\n"
         "print(job.workers.ready.process.pid, flush=True)\n"
         "time.sleep(600)\n"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        pid = int(front_end.stdout.readline())
        assert not gone(pid)
        front_end.send_signal(signal.SIGKILL)
        front_end.wait()
        until(lambda: gone(pid), "the waiting process outlived its front end", seconds=30)
    finally:
        front_end.kill()
        front_end.wait()
