"""Peak memory of a LoRA run on a CPU with automatic settings, for the rinna/japanese-gpt2-medium shape
(336M parameters, random weights; 24 layers, width 1024, vocabulary 32000) and the embedded tokenizer.

    python scripts/memory_check.py [--steps 5] [--method lora] [--threads 2] [--precision auto]

The training runs in a fresh process (`python -m finetune train`), so the peak resident set size it
reports in metrics.json (`peak_memory_mb`) is that run's alone: model loading, the held-out evaluation
and the steps. Prints one JSON line with the CPU's name, its bf16 instructions and the figures.
The goal (issue 12): under 8 GB on 2 CPU cores.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EMBEDDED = ROOT / "assets" / "tiny-japanese-gpt2"


def cpu_name() -> str:
    """The processor as lscpu names it, and which of its bf16 instructions the figures may depend on."""
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    name = fields.get("Model name", "unknown").strip()
    flags = fields.get("Flags", "").split()
    bf16 = [f for f in ("amx_bf16", "avx512_bf16") if f in flags]
    return f"{name} ({', '.join(bf16) if bf16 else 'no bf16 instructions'})"


def medium_model(folder: Path):
    """rinna/japanese-gpt2-medium's architecture, randomly initialised, with the embedded tokenizer."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=32000, n_positions=1024, n_embd=1024, n_layer=24, n_head=16,
                        bos_token_id=1, eos_token_id=2, pad_token_id=3)
    GPT2LMHeadModel(config).save_pretrained(folder)
    for name in ("spiece.model", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(EMBEDDED / name, folder)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5, help="optimizer steps (default %(default)s)")
    parser.add_argument("--method", default="lora", choices=["lora", "full"])
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the run (default %(default)s)")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                        help="auto: bf16 on CPUs with AMX/AVX512-BF16, else fp32 (default %(default)s)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="memory-check-") as tmp:
        base, out = Path(tmp) / "medium", Path(tmp) / "run"
        medium_model(base)
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(args.threads), "CUDA_VISIBLE_DEVICES": ""}
        cmd = [sys.executable, "-m", "finetune", "train", "--model", str(base), "--data", str(ROOT / "assets" / "corpus"),
               "--out", str(out), "--method", args.method, "--device", "cpu", "--max-steps", str(args.steps),
               "--precision", args.precision,
               "--heldout", "0.01", "--eval-steps", "1000", "--save-steps", "1000", "--json"]
        result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            print(result.stderr, file=sys.stderr)
            return result.returncode
        metrics = json.loads(result.stdout)
    keys = ("method", "precision", "block_size", "batch_size", "micro_batch_size", "grad_accum_steps",
            "gradient_checkpointing", "estimated_memory_mb", "peak_memory_mb", "trainable_parameters",
            "total_parameters", "steps", "train_tokens_per_second")
    print(json.dumps({"figure": "cpu_peak_memory", "cpu": cpu_name(), "threads": args.threads,
                      **{k: metrics.get(k) for k in keys},
                      "under_8_gb": metrics["peak_memory_mb"] < 8 * 1024}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
