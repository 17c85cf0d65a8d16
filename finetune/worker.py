"""`python -m finetune.worker REPLY_FILE --channel FD --parent PID`: one training job in a process of
its own, for TrainingJob (finetune/runner.py, finetune/workers.py).

The process first imports what training needs, then waits on the socket FD for the run folder's
lock (sent as a file descriptor, so that the lock lasts as long as this process), then reads the
job's settings as JSON on standard input ({"settings": …, "shape": … or null}); the metrics, or the
user error that stopped the run, are written to REPLY_FILE. A front end may start it long before a
run (a warm worker): waiting costs no CPU, and a socket closed before any lock came ends it.
A separate process has its own interpreter lock, so a front end's requests never hold up training
(finetune/priority.py).

The process ends with the front end that started it (Linux): a killed or restarted studio leaves
an interrupted run that it offers to resume, never a run training on unseen in the background.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import socket
import sys
from pathlib import Path

from .errors import FinetuneError
from .scratch import ModelShape, scratch
from .train import TrainSettings, train
from .workers import GO, READY


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


WARM_MODULES = ("transformers.trainer", "peft",  # what a run imports, slowest first
                "transformers.models.gpt2.modeling_gpt2", "transformers.models.gpt_neox.modeling_gpt_neox",
                "transformers.models.llama.modeling_llama")


def warm_up() -> None:
    """Import what every run needs before the run is known: the seconds a visitor would otherwise
    wait between the click and the first step."""
    for module in WARM_MODULES:
        importlib.import_module(module)


def received_lock(channel_fd: int):
    """Say that the imports are done, then wait for the run folder's lock on the socket; None when
    the front end closed it instead."""
    with socket.socket(fileno=channel_fd) as channel:
        try:
            channel.sendall(READY)
            message, fds, _, _ = socket.recv_fds(channel, len(GO), 1)
        except OSError:  # the front end has gone (closing unread, it resets the connection)
            return None
    if message != GO or not fds:
        for fd in fds:
            os.close(fd)
        return None
    return os.fdopen(fds[0], "a")


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m finetune.worker")
    p.add_argument("reply_file")
    p.add_argument("--channel", type=int, required=True, help="socket the run folder's lock arrives on")
    p.add_argument("--parent", type=int, default=0, help="the front end's process id")
    args = p.parse_args(argv)
    end_with_parent(args.parent)
    warm_up()
    lock = received_lock(args.channel)
    if lock is None:
        return 0
    spec = json.loads(sys.stdin.read())
    settings = TrainSettings(**spec["settings"])
    shape = ModelShape(**spec["shape"]) if spec.get("shape") else None
    try:
        metrics = scratch(settings, shape) if shape else train(settings)
    except (FinetuneError, ValueError) as err:
        reply = {"error": str(err), "kind": type(err).__name__}
    else:
        reply = {"metrics": metrics}
    Path(args.reply_file).write_text(json.dumps(reply, ensure_ascii=False), encoding="utf-8")
    lock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
