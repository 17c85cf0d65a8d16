"""Scale-out: the same CLI under torchrun, data-parallel on CPU (gloo), one output folder from rank 0."""
import json
import subprocess
import sys

from transformers import AutoModelForCausalLM

from conftest import ROOT


def test_torchrun_two_processes_writes_one_valid_output(tiny_model, unseen_text, tmp_path):
    out = tmp_path / "ddp"
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "-m", "finetune", "train",
         "--model", tiny_model, "--data", str(unseen_text), "--out", str(out), "--max-steps", "4",
         "--block-size", "64", "--device", "cpu", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    reports = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(reports) == 1  # rank 0 alone reports
    metrics = json.loads(reports[0])
    assert metrics["processes"] == 2 and metrics["steps"] == 4
    assert metrics["tokens_seen"] == 4 * 8 * 64 * 2
    assert json.loads((out / "metrics.json").read_text(encoding="utf-8")) == metrics
    events = [json.loads(x)["event"] for x in (out / "progress.jsonl").read_text(encoding="utf-8").splitlines()]
    assert events.count("start") == 1 and events[-1] == "done"
    assert AutoModelForCausalLM.from_pretrained(str(out)) is not None


def test_accelerate_launch_two_processes_writes_one_valid_output(tiny_model, unseen_text, tmp_path):
    """`accelerate launch` starts the processes through torch's launcher as well ('--multi_gpu' is its
    name for any multi-process launch; --device cpu keeps them on gloo)."""
    out = tmp_path / "accelerate"
    result = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
         "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
         "-m", "finetune", "train", "--model", tiny_model, "--data", str(unseen_text), "--out", str(out),
         "--max-steps", "4", "--block-size", "64", "--device", "cpu", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    reports = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(reports) == 1
    metrics = json.loads(reports[0])
    assert metrics["processes"] == 2 and metrics["tokens_seen"] == 4 * 8 * 64 * 2
    assert AutoModelForCausalLM.from_pretrained(str(out)) is not None
