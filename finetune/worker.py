"""`python -m finetune.worker REPLY_FILE`: one training job in a process of its own, for TrainingJob.

The job's settings arrive as JSON on standard input ({"settings": …, "shape": … or null}); the
metrics, or the user error that stopped the run, are written to REPLY_FILE. A separate process has
its own interpreter lock, so a front end's requests never hold up training (finetune/priority.py).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from .errors import FinetuneError
from .scratch import ModelShape, scratch
from .train import TrainSettings, train


def main(reply_file: str) -> int:
    spec = json.loads(sys.stdin.read())
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
