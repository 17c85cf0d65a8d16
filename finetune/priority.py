"""CPU priority between a training run and the requests of a shared front end (the studio).

On a 2-core Space, twenty visitors generating text would take most of the CPU from a training run.
Linux gives every thread its own nice value, and a new thread inherits the value of the thread that
creates it. So request threads make themselves nicer (`yield_cpu_to_training`), and training threads
are created by a launcher thread that was started with the process, before any request thread was
made nicer: training keeps the process's own priority, requests take what CPU is left. When nothing
trains, requests get the whole CPU as before (nice values only matter under contention).

Measured with scripts/load_test.py (20 visitors, 2 cores): a training run slowed 57% without this
and 48% with it. The rest is the GIL, which knows no priorities: training and requests share one
interpreter. Training in its own process would remove that.
"""
from __future__ import annotations

import logging
import os
import queue
import sys
import threading

log = logging.getLogger(__name__)

# Linux CFS shares a busy CPU by weight: nice 0 = 1024, 19 = 15. The studio lowers only the worker
# threads that compute (tokenizing, generating) to 19; its event loop stays at 0, because lowered
# too it starved while training ran and visitors' requests timed out (scripts/load_test.py).
REQUEST_NICENESS = 19


def yield_cpu_to_training(niceness: int = REQUEST_NICENESS) -> bool:
    """Make the calling thread (and threads it creates later, such as torch's worker threads) nicer.
    Returns False where per-thread priorities do not exist (not Linux) or could not be set, and on
    the main thread, which serves no request (a callback called there directly, as tests do, would
    lower everything the process starts afterwards)."""
    if sys.platform != "linux" or threading.current_thread() is threading.main_thread():
        return False
    tid = threading.get_native_id()
    try:
        if os.getpriority(os.PRIO_PROCESS, tid) < niceness:
            os.setpriority(os.PRIO_PROCESS, tid, niceness)
    except OSError as err:  # e.g. a sandbox that forbids it: requests then share the CPU evenly
        log.warning("could not lower the priority of a request thread: %s", err)
        return False
    return True


def thread_niceness() -> int | None:
    """The calling thread's nice value (None where threads have none of their own)."""
    if sys.platform != "linux":
        return None
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


class ThreadLauncher:
    """Starts threads on behalf of others from one thread created now, so that the new threads get
    this moment's priority, not that of the (possibly nicer) thread asking."""

    def __init__(self):
        self.requests: queue.Queue = queue.Queue()
        threading.Thread(target=self.serve, name="thread-launcher", daemon=True).start()

    def serve(self):
        while True:
            target, args, name, reply = self.requests.get()
            thread = threading.Thread(target=target, args=args, name=name, daemon=True)
            thread.start()
            reply.put(thread)

    def start(self, target, args=(), name: str | None = None) -> threading.Thread:
        """A started daemon thread running target(*args)."""
        reply: queue.Queue = queue.Queue(maxsize=1)
        self.requests.put((target, args, name, reply))
        return reply.get()
