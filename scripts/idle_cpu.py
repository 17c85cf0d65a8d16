#!/usr/bin/env python3
"""How much CPU the studio uses with no visitor at all: starts `python app.py` (as a Space with
--space: SPACE_ID and friends set, loopback only), waits until it serves, lets it settle, then reads
its CPU time (the process and its children) over a window. Goal: under 1% of one core.

  python scripts/idle_cpu.py --seconds 60 [--space]
"""
from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its waited-for children (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60, help="measuring window")
    parser.add_argument("--settle", type=float, default=10, help="seconds to wait after the app serves")
    parser.add_argument("--space", action="store_true", help="start it with the variables a Space sets")
    args = parser.parse_args()
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1",
           "GRADIO_ANALYTICS_ENABLED": "False", "STUDIO_HOME": tempfile.mkdtemp(prefix="studio-idle-")}
    if args.space:  # OAuth's provider is only asked when someone logs in: a dead loopback address will do
        env |= {"SYSTEM": "spaces", "SPACE_ID": "someone/japanese-gpt-studio",
                "SPACE_HOST": "someone-japanese-gpt-studio.hf.space", "OAUTH_CLIENT_ID": "idle-test",
                "OAUTH_CLIENT_SECRET": "idle-test", "OAUTH_SCOPES": "openid profile",
                "OPENID_PROVIDER_URL": f"http://127.0.0.1:{free_port()}"}
    env.pop("PORT", None)
    app = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 180
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2):
                    break
            except OSError:
                if time.time() > deadline or app.poll() is not None:
                    raise SystemExit("the app did not start")
                time.sleep(0.5)
        time.sleep(args.settle)
        before, started = cpu_seconds(app.pid), time.monotonic()
        time.sleep(args.seconds)
        used, elapsed = cpu_seconds(app.pid) - before, time.monotonic() - started
        print(f"idle CPU: {100 * used / elapsed:.2f}% of one core ({used:.2f} s of CPU in {elapsed:.0f} s, "
              f"{'as a Space' if args.space else 'local'})")
    finally:
        app.terminate()
        app.wait(timeout=30)


if __name__ == "__main__":
    main()
