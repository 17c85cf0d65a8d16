#!/usr/bin/env bash
# The prepared checks for a borrowed GPU machine (see /work/.library/device). Each section is one
# device call of well under 10 minutes:
#   bash scripts/gpu_check.sh            the bench on CUDA with its levers and plot, and at the same time the
#                                        CPU bench pinned to two of the host's cores          (carry [".whl"])
#   bash scripts/gpu_check.sh bigmodels  a 3.6B GPT-NeoX (rinna/japanese-gpt-neox-3.6b's shape, random weights):
#                                        LoRA with automatic settings against the hand-set 8x512 run, the same
#                                        fitted to a 16 GB GPU, and the fused loss against transformers' own
#                                        (carry [".whl"], liger-kernel's wheel included)
#   bash scripts/gpu_check.sh qlora      QLoRA of the 3.6B fitted to 6 GB, QLoRA of tiny GPT-2 / GPT-NeoX /
#                                        Llama models and the merge into bf16   (carry [".whl-qlora"])
#   bash scripts/gpu_check.sh speed      issue #14: time to quality, the small-data path, streaming, fused loss
#                                        (carry [".whl", ".seed"]; see its block below)
# Wheels for the exact pins travel with the call (the machine has transformers 5.17, no liger-kernel, no
# bitsandbytes); make them once with
#   echo /.whl/ >> .git/info/exclude; echo /.whl-qlora/ >> .git/info/exclude
#   get() { dir=$1; shift; for p in "$@"; do python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
#     --platform manylinux2014_x86_64 -d $dir $p; done; }
#   get .whl transformers==5.24.0 tokenizers==0.23.3 peft==0.21.2 sentencepiece==0.2.3 liger-kernel==0.8.5
#   get .whl-qlora bitsandbytes==0.50.2 peft==0.21.2
# .whl-qlora holds bitsandbytes (43 MB) and peft alone: with the working tree (22 MB) that is what fits the
# device tool's 64 MiB, so the qlora section runs on the machine's own transformers 5.17.
set -u
section=${1:-bench}
wheels=.whl; [ "$section" = qlora ] && wheels=.whl-qlora
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site $wheels/*.whl \
  && export PYTHONPATH=/tmp/site || exit 1
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv
grep -m1 "model name" /proc/cpuinfo; grep -o -m1 -w -E "amx_bf16|avx512_bf16" /proc/cpuinfo | sort -u
python3 -c "import torch, transformers, peft; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__)"

# ==== Issue #14 block (speed): time to quality, the small-data GPU path, streaming, fused loss ====
# Its own command (the device tool allows 10 minutes a command):  bash scripts/gpu_check.sh speed
# with carry [".whl", ".seed"]. Put liger-kernel==0.8.5 (scripts/requirements-gpu.txt) in .whl/ too, for the
# fused-loss levers:  python3 -m pip download --no-deps -d .whl liger-kernel==0.8.5
# The seed article is not in the repository: copy it to an ignored path first, or the figure says it
# used the project's stand-in text:  echo /.seed/ >> .git/info/exclude; mkdir -p .seed;
#   cp ../shared/seed/article-ja.txt .seed/   (or /work/shared/seed/article-ja.txt)
# Reads: time_to_quality (article, 1M characters) seed vs engine on CUDA; equal_tokens/ratio (the
# small-data path: fp32/TF32 8x128 must not be slower than the seed); engine + levers (>= 20x, MFU);
# generation and streaming.
if [ "$section" = speed ]; then
  [ -f .seed/article-ja.txt ] && export SEED_ARTICLE=$PWD/.seed/article-ja.txt
  python3 -c "import liger_kernel; print('liger-kernel', liger_kernel.__version__ if hasattr(liger_kernel, '__version__') else 'present')" \
    || echo "liger-kernel missing: no fused-loss levers"
  timeout 540 python3 -m finetune bench --device cuda --steps 100 --no-startup --levers \
    --lever-filter "8x128,liger,dropout 0" --plot "$OUT/speed-cuda.svg" 2> "$OUT/speed-cuda.err" | tee "$OUT/speed-cuda.jsonl"
  tail -5 "$OUT/speed-cuda.err"
  exit 0
fi
# ==== end of the issue #14 block ====

if [ "$section" = bench ]; then
  last=$(($(nproc) - 1))
  CUDA_VISIBLE_DEVICES= OMP_NUM_THREADS=2 timeout 430 taskset -c $((last - 1)),$last \
    python3 -m finetune bench --device cpu --levers --no-startup --no-quality > "$OUT/cpu2.jsonl" 2> "$OUT/cpu2.err" &
  cpu=$!
  timeout 440 taskset -c 0-$((last - 2)) python3 -m finetune bench --device cuda --steps 100 --levers --no-startup --no-quality \
    --plot "$OUT/bench-cuda.svg" 2> "$OUT/cuda.err" | tee "$OUT/cuda.jsonl"
  tail -3 "$OUT/cuda.err"
  wait $cpu
  cat "$OUT/cpu2.jsonl"; tail -3 "$OUT/cpu2.err"
  exit 0
fi

# ---- shared by the model sections ------------------------------------------------------------
mkdir -p /tmp/data && for i in $(seq 1 10); do cp -r assets/corpus /tmp/data/c$i; done  # ~2.1M characters
python3 - <<'PY'
# rinna/japanese-gpt-neox-3.6b's shape with random bf16 weights, built on the GPU, and the embedded
# tokenizer (6,000 pieces, inside the 32,000 vocabulary)
import shutil, time, torch
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM
started = time.time()
config = GPTNeoXConfig(vocab_size=32000, hidden_size=2816, num_hidden_layers=36, num_attention_heads=22,
                       intermediate_size=11264, max_position_embeddings=2048, rotary_pct=1.0, tie_word_embeddings=False,
                       use_parallel_residual=False, bos_token_id=2, eos_token_id=3, dtype="bfloat16")
torch.manual_seed(0)
with torch.device("cuda"):
    model = GPTNeoXForCausalLM(config).to(torch.bfloat16)
model.save_pretrained("/tmp/neox36")
for name in ("spiece.model", "tokenizer.json", "tokenizer_config.json"):
    shutil.copy(f"assets/tiny-japanese-gpt2/{name}", "/tmp/neox36")
print(f"3.6B NeoX: {sum(p.numel() for p in model.parameters()):,} parameters, saved in {time.time() - started:.0f} s")
PY
capped() {  # GIB ARGS...: the CLI in a process whose GPU memory is capped at GIB (memory fitting sees a smaller GPU)
  python3 - "$@" <<'PY'
import sys, torch
total = torch.cuda.get_device_properties(0).total_memory
torch.cuda.set_per_process_memory_fraction(float(sys.argv[1]) * 2**30 / total)
from finetune.cli import main
sys.exit(main(sys.argv[2:]))
PY
}
show() {  # NAME: the figures of a run's metrics.json, one JSON line
  python3 - "$1" <<'PY'
import json, sys
name = sys.argv[1]
m = json.load(open(f"/tmp/{name}/metrics.json"))
keys = ("method", "block_size", "batch_size", "micro_batch_size", "grad_accum_steps", "gradient_checkpointing",
        "fused_loss", "precision", "steps", "train_tokens_per_second", "peak_memory_mb", "estimated_memory_mb",
        "memory_retries", "trainable_parameters", "total_parameters", "heldout_loss_before", "heldout_loss_after")
print(json.dumps({"run": name, **{k: m.get(k) for k in keys}}))
PY
}
train() {  # NAME ARGS...: a CUDA training run of 20 steps into /tmp/NAME (the first 2 are left out of tokens/s)
  name=$1; shift
  timeout ${RUN_TIMEOUT:-150} "$@" --data /tmp/data --out /tmp/$name --device cuda --max-steps 20 --heldout 0.02 --eval-steps 1000 \
    --save-steps 1000 --json > /tmp/$name.json 2> /tmp/$name.err || { echo "$name failed:"; tail -3 /tmp/$name.err; }
  { echo "== $name"; tail -20 /tmp/$name.err; } >> "$OUT/runs.log"  # $OUT brings back 8 files at most
  grep -h '"event": "memory"' /tmp/$name/progress.jsonl 2>/dev/null | cut -c1-400
  [ -f /tmp/$name/metrics.json ] && show $name | tee -a "$OUT/figures.jsonl"
}

if [ "$section" = bigmodels ]; then
  echo "== fused linear cross-entropy against transformers' loss (xsmall shape, 8 x 1024 tokens)"
  python3 - <<'PY'
import torch
from finetune.bench import xsmall_model
from finetune.fused import liger_available, loss_difference
print("liger-kernel installed:", liger_available())
model = xsmall_model().cuda().train()
ids = torch.randint(4, 32000, (8, 1024), device="cuda")
for dtype in (torch.bfloat16, torch.float32):
    reference, fused = loss_difference(model, ids, dtype=dtype)
    print(f"{dtype}: transformers {reference:.6f}  fused {fused:.6f}  difference {abs(reference - fused):.2e}"
          f"  {'OK' if abs(reference - fused) <= 1e-3 else 'OVER 1e-3'}")
PY
  echo "== 3.6B GPT-NeoX LoRA: hand-set 8x512 (every linear layer; and attention only, the former default)"
  train hand python3 -m finetune train --model /tmp/neox36 --method lora --batch-size 8 --block-size 512
  train hand-qkv python3 -m finetune train --model /tmp/neox36 --method lora --batch-size 8 --block-size 512 \
    --lora-targets query_key_value
  echo "== automatic settings (no size flags)"
  train auto python3 -m finetune train --model /tmp/neox36 --method lora
  echo "== automatic settings, fused loss off; and with LoRA dropout 0 (no dropped copy of each adapted input)"
  train auto-unfused python3 -m finetune train --model /tmp/neox36 --method lora --fused-loss off
  train auto-nodropout python3 -m finetune train --model /tmp/neox36 --method lora --lora-dropout 0
  echo "== automatic settings fitted to a 16 GB GPU"
  train auto-16gb capped 16 train --model /tmp/neox36 --method lora
  python3 - "$OUT/figures.jsonl" <<'PY'
import json, sys
runs = {r["run"]: r for r in map(json.loads, open(sys.argv[1]))}
for auto in ("auto", "auto-unfused", "auto-nodropout"):
    for hand in ("hand", "hand-qkv"):
        if auto in runs and hand in runs:
            ratio = runs[auto]["train_tokens_per_second"] / runs[hand]["train_tokens_per_second"]
            print(f"{auto} / {hand} (8x512) tokens/s: {ratio:.2f} (goal >= 1.3)")
if "auto-16gb" in runs:
    peak = runs["auto-16gb"]["peak_memory_mb"] / 1024
    print(f"fitted to 16 GB: peak {peak:.1f} GiB (goal <= 14)")
PY
fi

if [ "$section" = qlora ]; then
  python3 -c "import bitsandbytes; print('bitsandbytes', bitsandbytes.__version__)"
  echo "== 3.6B GPT-NeoX QLoRA, automatic settings fitted to 6 GB"
  RUN_TIMEOUT=300 train qlora-6gb capped 6 train --model /tmp/neox36 --method qlora
  echo "== tiny GPT-2 / GPT-NeoX / Llama QLoRA, 20 steps each, then the merge into bf16"
  python3 - <<'PY'
import shutil, torch
from transformers import AutoModelForCausalLM, GPT2Config, GPTNeoXConfig, LlamaConfig
ids = dict(bos_token_id=1, eos_token_id=2, pad_token_id=3, vocab_size=6000)
configs = {"gpt2": GPT2Config(n_embd=256, n_layer=4, n_head=4, n_positions=1024, **ids),
           "gpt_neox": GPTNeoXConfig(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024,
                                     max_position_embeddings=1024, **ids),
           "llama": LlamaConfig(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
                                intermediate_size=768, max_position_embeddings=1024, **ids)}
for arch, config in configs.items():
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(f"/tmp/tiny-{arch}")
    for name in ("spiece.model", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(f"assets/tiny-japanese-gpt2/{name}", f"/tmp/tiny-{arch}")
PY
  for arch in gpt2 gpt_neox llama; do
    python3 -m finetune train --model /tmp/tiny-$arch --method qlora --data assets/corpus --out /tmp/q-$arch \
      --device cuda --max-steps 20 --lr 2e-3 --block-size 256 --json > /tmp/q-$arch.json 2> /tmp/q-$arch.err \
      || tail -3 /tmp/q-$arch.err
    { echo "== q-$arch"; tail -20 /tmp/q-$arch.err; } >> "$OUT/runs.log"
    [ -f /tmp/q-$arch/metrics.json ] && show q-$arch | tee -a "$OUT/figures.jsonl"
    python3 -m finetune export --model /tmp/q-$arch --out /tmp/q-$arch-merged.zip --merge > /dev/null 2>> "$OUT/runs.log" \
      && (cd /tmp && python3 -m zipfile -e q-$arch-merged.zip /tmp)
    python3 - $arch <<'PY'
import sys, torch
from peft import PeftModel
from transformers import AutoModelForCausalLM
arch = sys.argv[1]
merged = AutoModelForCausalLM.from_pretrained(f"/tmp/q-{arch}-merged").eval()
adapted = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(f"/tmp/tiny-{arch}", dtype=torch.bfloat16),
                                    f"/tmp/q-{arch}").eval()
x = torch.randint(4, 6000, (1, 64))
with torch.no_grad():
    a, m = adapted(input_ids=x).logits.float(), merged(input_ids=x).logits.float()
print(f"{arch}: merged dtype {merged.dtype}, |adapter on bf16 base - merged| max {(a - m).abs().max():.3f} "
      f"of logits up to {a.abs().max():.1f}")
PY
  done
  python3 - "$OUT/figures.jsonl" <<'PY'
import json, sys
runs = {r["run"]: r for r in map(json.loads, open(sys.argv[1]))}
if "qlora-6gb" in runs:
    print(f"QLoRA fitted to 6 GB: peak {runs['qlora-6gb']['peak_memory_mb'] / 1024:.1f} GiB (goal <= 6)")
PY
fi
