"""`python -m finetune.worker REPLY_FILE`: one training job in a process of its own, for TrainingJob.

The job's settings arrive as JSON on standard input ({"settings": …, "shape": … or null}); the
metrics, or the user error that stopped the run, are written to REPLY_FILE. A separate process has
its own interpreter lock, so a front end's requests never hold up training (finetune/priority.py).

The process ends with the front end that started it (Linux): a killed or restarted studio leaves
an interrupted run that it offers to resume, never a run training on unseen in the background.
"""
from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

from .errors import FinetuneError
from .scratch import ModelShape, scratch
from .train import TrainSettings, train


PR_SET_PDEATHSIG = 1  # prctl(2): the signal this process gets when its parent thread ends


def end_with_parent(parent: int | None) -> None:
    """Ask Linux to end this process (SIGTERM) when the process that started it ends; end now if it
    already has. Elsewhere, nothing (the run then finishes on its own)."""
    if sys.platform != "linux" or not parent:
        return
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        return  # not allowed here (a sandbox): the run goes on as before
    if os.getppid() != parent:
        sys.exit(1)


def main(reply_file: str) -> int:
    spec = json.loads(sys.stdin.read())
    end_with_parent(spec.get("parent"))
    settings = TrainSettings(**spec["settings"])
    shape = ModelShape(**spec["shape"]) if spec.get("shape") else None
    try:
        metrics = scratch(settings, shape) if shape else train(settings)
    except (FinetuneError, ValueError) as err:
        reply = {"error": str(err), "kind": type(err).__name__}
    else:
        reply = {"metrics": metrics}
    Path(reply_file).write_text(json.dumps(reply, ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
