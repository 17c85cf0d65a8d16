#!/usr/bin/env python3
"""Load test of the studio on loopback: N concurrent users tokenize and generate while one training
job runs; reports p50/p95 latency per action, how many users were answered, and how much the
training slowed compared with an idle run. Bounded in requests and time; touches only 127.0.0.1.

  python scripts/load_test.py --users 20 --rounds 3
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEXT = ROOT / "tests" / "data" / "unseen-ja.txt"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(port: int, home: str) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_SERVER_PORT": str(port), "STUDIO_HOME": home,
           "GRADIO_ANALYTICS_ENABLED": "False"}
    env.pop("PORT", None)
    return subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def wait_until_served(url: str, deadline: float):
    import urllib.request
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise SystemExit("the app did not start in time")


def train_once(client, steps: int, deadline: float) -> float:
    """Start a training job, wait for it, return its training tokens/s."""
    from gradio_client import handle_file
    client.predict(files=[handle_file(str(TEXT))], max_steps=steps, block_size=64, api_name="/start_training")
    while time.time() < deadline:
        status = client.predict(api_name="/training_status")
        if status["state"] not in ("running", "stopping"):
            if status["state"] != "done":
                raise SystemExit(f"training ended as {status['state']}: {status.get('error')}")
            return status["metrics"]["train_tokens_per_second"]
        time.sleep(1)
    raise SystemExit("training did not finish in time")


def user(url: str, rounds: int, deadline: float, latencies: dict, answered: list, lock: threading.Lock):
    from gradio_client import Client
    client = Client(url, verbose=False)
    done = 0
    for i in range(rounds):
        for action, call in (("tokenize", lambda: client.predict(f"今日は{i}回目の試験です。", api_name="/tokenize")),
                             ("generate", lambda: client.predict(prompt="「科学」とは", max_new_tokens=20, seed=i,
                                                                 api_name="/generate"))):
            if time.time() > deadline:
                return
            started = time.perf_counter()
            try:
                call()
            except Exception as err:  # counted and reported, the load goes on
                with lock:
                    latencies.setdefault(action + "_errors", []).append(str(err)[:200])
                continue
            with lock:
                latencies.setdefault(action, []).append(time.perf_counter() - started)
        done += 1
    with lock:
        answered.append(done == rounds)


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--users", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3, help="tokenize+generate pairs per user")
    p.add_argument("--train-steps", type=int, default=40)
    p.add_argument("--seconds", type=int, default=600, help="hard limit for the whole test")
    a = p.parse_args()
    deadline = time.time() + a.seconds
    from gradio_client import Client
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    with tempfile.TemporaryDirectory(prefix="studio-load-") as home:
        app = start_app(port, home)
        try:
            wait_until_served(url, time.time() + 120)
            # The simulated visitors' own CPU (20 clients) would be on their machines, not the server's:
            # run this process's threads nicer than the app (already started at the usual priority).
            os.nice(10)
            client = Client(url, verbose=False)
            idle = train_once(client, a.train_steps, deadline)
            latencies: dict = {}
            answered: list = []
            lock = threading.Lock()
            users = [threading.Thread(target=user, args=(url, a.rounds, deadline, latencies, answered, lock))
                     for _ in range(a.users)]
            result: dict = {}
            def loaded_training():
                try:
                    result.update(tps=train_once(client, a.train_steps, deadline))
                except (SystemExit, Exception) as err:  # reported below; the crowd goes on
                    result.update(error=str(err)[:300])
            trainer = threading.Thread(target=loaded_training)
            trainer.start()
            time.sleep(2)  # let training get going before the crowd arrives
            for t in users:
                t.start()
            for t in users + [trainer]:
                t.join()
        finally:
            app.terminate()
            app.wait(timeout=30)
    for action in ("tokenize", "generate"):
        times = latencies.get(action, [])
        errors = latencies.get(action + "_errors", [])
        print(json.dumps({"action": action, "requests": len(times), "errors": len(errors),
                          "first_error": errors[0] if errors else None,
                          "p50_s": round(statistics.median(times), 3) if times else None,
                          "p95_s": round(percentile(times, 0.95), 3) if times else None}))
    print(json.dumps({"users": a.users, "users_fully_answered": sum(answered),
                      "training_tokens_per_second_idle": idle,
                      "training_tokens_per_second_loaded": result.get("tps"),
                      "training_slowdown": round(1 - result["tps"] / idle, 3) if result.get("tps") else None,
                      "training_error": result.get("error")}))


if __name__ == "__main__":
    main()
