"""Training processes for TrainingJob (finetune/runner.py), and one kept ready ahead of the next run.

A run trains in a child process (`python -m finetune.worker`, its own interpreter lock). Starting
one costs seconds of imports (torch, transformers, peft) before its first step, so a front end that
asks for it (`SpareWorker(warm=True)`) starts the next run's process ahead of time: it imports
everything and then waits, using no CPU, until a run hands it the run folder's lock and its settings.

Each process gets, when it is made: a private folder (its reply file and its output), and one end
of a socket pair. The run sends the run folder's lock over the socket (so the lock lives as long as
the process, whatever happens to the front end) and its settings on standard input. A process whose
front end goes away before it gets a run finds the socket closed and ends.
"""
from __future__ import annotations

import os
import queue
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
GO = b"go"  # what the run sends with the lock; anything else (or nothing) tells a waiting process to end
READY = b"ready"  # what the process sends once its imports are done


@dataclass
class WorkerProcess:
    """A started `python -m finetune.worker`, waiting for its run or running it."""
    process: subprocess.Popen
    folder: Path                  # private: reply.json and output.log
    channel: socket.socket        # our end of the socket pair (the lock travels over it)

    @property
    def reply_file(self) -> Path:
        return self.folder / "reply.json"

    @property
    def output(self) -> Path:
        return self.folder / "output.log"

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait_ready(self, timeout: float) -> bool:
        """Wait until the process has imported what training needs (False: not within `timeout`,
        or it ended). For measurements and tests; a run never needs to wait for this."""
        self.channel.settimeout(timeout)
        try:
            return self.channel.recv(len(READY), socket.MSG_PEEK) == READY
        except TimeoutError:
            return False
        finally:
            self.channel.settimeout(None)

    def hand_over(self, lock, spec: str):
        """Give the process its run: the run folder's lock (an open, locked file), then its settings."""
        socket.send_fds(self.channel, [GO], [lock.fileno()])
        self.process.stdin.write(spec)
        self.process.stdin.close()

    def discard(self):
        """End a process that will not get a run (or has finished one) and remove its folder."""
        self.channel.close()  # a waiting process sees the socket close and ends
        if self.process.stdin and not self.process.stdin.closed:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def spawn_worker() -> WorkerProcess:
    """A new training process; it imports what training needs and waits for `hand_over`."""
    folder = Path(tempfile.mkdtemp(prefix="finetune-job-"))
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    path = os.pathsep.join(filter(None, [str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")]))
    try:
        with open(folder / "output.log", "w") as sink:
            process = subprocess.Popen(
                [sys.executable, "-m", "finetune.worker", str(folder / "reply.json"),
                 "--channel", str(theirs.fileno()), "--parent", str(os.getpid())],
                text=True, stdin=subprocess.PIPE, stdout=sink, stderr=sink,
                env=os.environ | {"PYTHONPATH": path}, pass_fds=(theirs.fileno(),))
    except OSError:
        ours.close()
        shutil.rmtree(folder, ignore_errors=True)
        raise
    finally:
        theirs.close()
    return WorkerProcess(process, folder, ours)


class SpareWorker:
    """Where runs get their processes. Processes are made on one long-lived thread: Linux ends a
    child when the *thread* that made it ends (finetune/worker.py), and the child takes that thread's
    CPU priority, so it is started from the job's launcher (finetune/priority.py).

    With `warm`, one process is kept ready: made now, and again after each run has ended (not while
    a run trains, when its imports would take CPU from the training)."""

    def __init__(self, launcher, warm: bool = False):
        self.warm = warm
        self.lock = threading.Lock()
        self.ready: WorkerProcess | None = None
        self.requests: queue.Queue = queue.Queue()
        launcher.start(self.serve, name="worker-spawner")
        if warm:
            self.prepare()

    def serve(self):
        while True:
            reply = self.requests.get()
            try:
                worker = spawn_worker()
            except OSError as err:   # told to the run that asked; a spare that fails is made later
                if reply is not None:
                    reply.put(err)
                continue
            if reply is not None:
                reply.put(worker)
                continue
            with self.lock:
                worker, self.ready = self.ready, worker
            if worker is not None:    # (two prepares in a row: keep one)
                worker.discard()

    def prepare(self):
        """Start a process for the next run in the background (with `warm`; otherwise nothing)."""
        if self.warm:
            self.requests.put(None)

    def take(self) -> WorkerProcess:
        """A process for a run: the ready one when there is one still alive, else a new one."""
        with self.lock:
            worker, self.ready = self.ready, None
        if worker is not None and worker.alive():
            return worker
        if worker is not None:
            worker.discard()
        reply: queue.Queue = queue.Queue(maxsize=1)
        self.requests.put(reply)
        made = reply.get()
        if isinstance(made, OSError):
            raise made
        return made

    def close(self):
        """End the ready process (the app is closing)."""
        with self.lock:
            worker, self.ready = self.ready, None
        if worker is not None:
            worker.discard()
