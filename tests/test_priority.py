"""Request threads yield the CPU to training threads (finetune/priority.py); Linux only.

Each case runs in a fresh interpreter: nice values only go up, and other tests call the studio's
callbacks on pytest's own thread, which lowers it for good."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from finetune.priority import REQUEST_NICENESS

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="per-thread nice values are a Linux feature")

ROOT = Path(__file__).resolve().parent.parent

PRELUDE = '''
import json, threading
from finetune.priority import ThreadLauncher, thread_niceness, yield_cpu_to_training

def in_thread(fn):
    box = {}
    thread = threading.Thread(target=lambda: box.setdefault("value", fn()))
    thread.start()
    thread.join()
    return box["value"]
'''


def niceness_report(code: str) -> dict:
    """Run PRELUDE + code in a fresh interpreter; the JSON object it prints."""
    done = subprocess.run([sys.executable, "-c", PRELUDE + code], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, check=True)
    return json.loads(done.stdout)


def test_a_request_thread_becomes_nicer_and_its_children_inherit_it():
    report = niceness_report('''
def request():
    ok = yield_cpu_to_training()
    return ok, thread_niceness(), in_thread(thread_niceness)
ok, own, child = in_thread(request)
print(json.dumps({"ok": ok, "own": own, "child": child, "main": thread_niceness()}))
''')
    assert report["ok"]
    assert report["own"] >= REQUEST_NICENESS and report["child"] >= REQUEST_NICENESS
    assert report["main"] < REQUEST_NICENESS  # other threads are untouched


def test_threads_from_the_launcher_keep_the_priority_it_was_created_with():
    report = niceness_report('''
launcher = ThreadLauncher()
def request():
    yield_cpu_to_training()
    box = {}
    launcher.start(lambda: box.setdefault("nice", thread_niceness()), name="training").join()
    plain = in_thread(thread_niceness)  # what a thread made by the request itself would get
    return box["nice"], plain
launched, plain = in_thread(request)
print(json.dumps({"base": thread_niceness(), "launched": launched, "plain": plain}))
''')
    assert report["launched"] == report["base"] < REQUEST_NICENESS
    assert report["plain"] >= REQUEST_NICENESS


def test_the_main_thread_is_never_lowered():
    report = niceness_report('''
before = thread_niceness()
ok = yield_cpu_to_training()
print(json.dumps({"ok": ok, "before": before, "after": thread_niceness(), "child": in_thread(thread_niceness)}))
''')
    assert report["ok"] is False
    assert report["after"] == report["before"] < REQUEST_NICENESS
    assert report["child"] == report["before"]  # threads started later are not lowered either
