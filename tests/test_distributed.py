"""Scale-out: the same CLI under torchrun and accelerate, data-parallel on CPU (gloo), one output folder
from rank 0. Each rank records what it trained on and the weights it ended with, so the test sees the
data split and the gradient sync themselves, not just the numbers the code derives from them."""
import hashlib
import json
import os
import subprocess
import sys

from conftest import ROOT, assert_trained_model

# The CLI with a probe: every block a rank trains on, and a digest of its weights when training
# returns, go to PROBE_DIR/rank{RANK}.json.
PROBE = r'''
import hashlib, json, os, sys
import transformers
from finetune.cli import main

seen = []
training_step = transformers.Trainer.training_step
trainer_train = transformers.Trainer.train


def weights_digest(state_dict):
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        digest.update(name.encode() + state_dict[name].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def record(self, model, inputs, *args, **kwargs):
    seen.extend(inputs["input_ids"].tolist())
    return training_step(self, model, inputs, *args, **kwargs)


def train_and_report(self, *args, **kwargs):
    result = trainer_train(self, *args, **kwargs)
    report = {"blocks": seen, "weights": weights_digest(self.accelerator.unwrap_model(self.model).state_dict())}
    with open(os.path.join(os.environ["PROBE_DIR"], f"rank{os.environ['RANK']}.json"), "w") as f:
        json.dump(report, f)
    return result


transformers.Trainer.training_step = record
transformers.Trainer.train = train_and_report
sys.exit(main(sys.argv[1:]))
'''
STEPS, BATCH, BLOCK = 2, 8, 64  # 2 ranks x 2 steps x 8 blocks: 32 blocks, fewer than one epoch holds


def weights_digest(state_dict) -> str:
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        digest.update(name.encode() + state_dict[name].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def launched(launcher: list[str], tiny_model, unseen_text, tmp_path):
    """Run `launcher PROBE train …` with 2 processes; (metrics printed, rank reports, output folder)."""
    out, probes = tmp_path / "out", tmp_path / "probes"
    probes.mkdir()
    script = tmp_path / "probe.py"
    script.write_text(PROBE, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", *launcher, str(script), "train", "--model", tiny_model, "--data", str(unseen_text),
         "--out", str(out), "--max-steps", str(STEPS), "--block-size", str(BLOCK), "--batch-size", str(BATCH),
         "--device", "cpu", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env=os.environ | {"PROBE_DIR": str(probes), "PYTHONPATH": str(ROOT)})  # the script's folder is not the repo
    assert result.returncode == 0, result.stderr[-3000:]
    reports = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(reports) == 1, result.stdout  # rank 0 alone reports
    ranks = [json.loads((probes / f"rank{r}.json").read_text()) for r in (0, 1)]
    return json.loads(reports[0]), ranks, out


def check_data_parallel_run(metrics, ranks, out, tiny_model, unseen_text):
    from finetune.data import build_dataset, read_documents
    from finetune.models import load_tokenizer_for, resolve_source
    tokenizer, _ = load_tokenizer_for(resolve_source(tiny_model))
    data = build_dataset(read_documents([str(unseen_text)]), tokenizer, BLOCK)  # the CLI's split (seed 42)
    train_blocks = {tuple(row) for row in data.train_blocks.tolist()}
    seen = [{tuple(row) for row in rank["blocks"]} for rank in ranks]
    assert len(train_blocks) >= 2 * STEPS * BATCH
    assert [len(rank["blocks"]) for rank in ranks] == [STEPS * BATCH] * 2
    assert seen[0] | seen[1] <= train_blocks and not seen[0] & seen[1]  # disjoint shares of the data
    assert len(seen[0] | seen[1]) == 2 * STEPS * BATCH                    # no block twice
    assert ranks[0]["weights"] == ranks[1]["weights"]                     # gradients were averaged
    saved = assert_trained_model(out, tiny_model)
    assert weights_digest(saved.state_dict()) == ranks[0]["weights"]      # rank 0 saved what both hold
    assert metrics["processes"] == 2 and metrics["steps"] == STEPS
    assert metrics["tokens_seen"] == sum(len(rank["blocks"]) for rank in ranks) * BLOCK
    assert json.loads((out / "metrics.json").read_text(encoding="utf-8")) == metrics
    events = [json.loads(x)["event"] for x in (out / "progress.jsonl").read_text(encoding="utf-8").splitlines()]
    assert events.count("start") == 1 and events[-1] == "done"


def test_torchrun_two_processes_split_the_data_and_end_with_one_model(tiny_model, unseen_text, tmp_path):
    metrics, ranks, out = launched(["torch.distributed.run", "--nproc_per_node=2"], tiny_model, unseen_text, tmp_path)
    check_data_parallel_run(metrics, ranks, out, tiny_model, unseen_text)


def test_accelerate_launch_two_processes_split_the_data_and_end_with_one_model(tiny_model, unseen_text, tmp_path):
    """`accelerate launch` starts the processes through torch's launcher as well ('--multi_gpu' is its
    name for any multi-process launch; --device cpu keeps them on gloo)."""
    metrics, ranks, out = launched(["accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                                    "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"],
                                   tiny_model, unseen_text, tmp_path)
    check_data_parallel_run(metrics, ranks, out, tiny_model, unseen_text)
