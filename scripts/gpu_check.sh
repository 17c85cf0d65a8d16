#!/usr/bin/env bash
# The one prepared check for a borrowed GPU machine (see /work/.library/device): the bench on CUDA
# with its levers and plot, and, at the same time, the CPU bench pinned to two of the host's cores.
# Wheels for the exact pins travel in .whl/ (the machine has older transformers); make them once with
#   echo /.whl/ >> .git/info/exclude
#   for p in transformers==5.24.0 tokenizers==0.23.3 peft==0.21.2 sentencepiece==0.2.3; do
#     python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl $p; done
# and run this script through the device tool with carry [".whl"].
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  && export PYTHONPATH=/tmp/site || exit 1
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv
grep -m1 "model name" /proc/cpuinfo; grep -o -m1 -w -E "amx_bf16|avx512_bf16" /proc/cpuinfo | sort -u
python3 -c "import torch, transformers, peft; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__)"

# ==== Issue #14 block (speed): time to quality, the small-data GPU path, streaming, fused loss ====
# Its own command (the device tool allows 10 minutes a command):  bash scripts/gpu_check.sh speed
# with carry [".whl", ".seed"]. Put liger-kernel==0.8.5 (requirements-gpu.txt) in .whl/ too, for the
# fused-loss levers:  python3 -m pip download --no-deps -d .whl liger-kernel==0.8.5
# The seed article is not in the repository: copy it to an ignored path first, or the figure says it
# used the project's stand-in text:  echo /.seed/ >> .git/info/exclude; mkdir -p .seed;
#   cp ../shared/seed/article-ja.txt .seed/   (or /work/shared/seed/article-ja.txt)
# Reads: time_to_quality (article, 1M characters) seed vs engine on CUDA; equal_tokens/ratio (the
# small-data path: fp32/TF32 8x128 must not be slower than the seed); engine + levers (>= 20x, MFU);
# generation and streaming.
if [ "${1:-}" = speed ]; then
  [ -f .seed/article-ja.txt ] && export SEED_ARTICLE=$PWD/.seed/article-ja.txt
  python3 -c "import liger_kernel; print('liger-kernel', liger_kernel.__version__ if hasattr(liger_kernel, '__version__') else 'present')" \
    || echo "liger-kernel missing: no fused-loss levers"
  timeout 540 python3 -m finetune bench --device cuda --steps 100 --no-startup --levers \
    --lever-filter "8x128,liger,dropout 0" --plot "$OUT/speed-cuda.svg" 2> "$OUT/speed-cuda.err" | tee "$OUT/speed-cuda.jsonl"
  tail -5 "$OUT/speed-cuda.err"
  exit 0
fi
# ==== end of the issue #14 block ====
last=$(($(nproc) - 1))
CUDA_VISIBLE_DEVICES= OMP_NUM_THREADS=2 timeout 430 taskset -c $((last - 1)),$last \
  python3 -m finetune bench --device cpu --levers --no-startup --no-quality > "$OUT/cpu2.jsonl" 2> "$OUT/cpu2.err" &
cpu=$!
timeout 440 taskset -c 0-$((last - 2)) python3 -m finetune bench --device cuda --steps 100 --levers --no-startup --no-quality \
  --plot "$OUT/bench-cuda.svg" 2> "$OUT/cuda.err" | tee "$OUT/cuda.jsonl"
tail -3 "$OUT/cuda.err"
wait $cpu
cat "$OUT/cpu2.jsonl"; tail -3 "$OUT/cpu2.err"
