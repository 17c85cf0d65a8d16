"""Request threads yield the CPU to training threads (finetune/priority.py); Linux only."""
import sys
import threading

import pytest

from finetune.priority import REQUEST_NICENESS, ThreadLauncher, thread_niceness, yield_cpu_to_training

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="per-thread nice values are a Linux feature")


def in_thread(fn):
    """fn() run in a new thread; its result."""
    box = {}
    thread = threading.Thread(target=lambda: box.setdefault("value", fn()))
    thread.start()
    thread.join()
    return box["value"]


def test_a_request_thread_becomes_nicer_and_its_children_inherit_it():
    def request():
        assert yield_cpu_to_training()
        return thread_niceness(), in_thread(thread_niceness)
    own, child = in_thread(request)
    assert own >= REQUEST_NICENESS and child >= REQUEST_NICENESS
    assert thread_niceness() < REQUEST_NICENESS  # the test's own thread is untouched


def test_threads_from_the_launcher_keep_the_priority_it_was_created_with():
    base = thread_niceness()
    launcher = ThreadLauncher()

    def request():
        yield_cpu_to_training()
        box = {}
        thread = launcher.start(lambda: box.setdefault("nice", thread_niceness()), name="training")
        thread.join()
        return box["nice"]
    assert in_thread(request) == base
