#!/usr/bin/env bash
# A short check of the CUDA path on a borrowed GPU machine (see scripts/gpu_check.sh for the bench):
# the CLI with automatic settings on a real corpus, the output loading in plain transformers, and
# the out-of-memory message when the batch cannot fit.
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  && export PYTHONPATH=/tmp/site || exit 1
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
python3 - <<'PY'
from finetune.bench import embedded_tokenizer, xsmall_model
xsmall_model().save_pretrained("/tmp/xs")
embedded_tokenizer().save_pretrained("/tmp/xs")
PY
echo "== automatic settings on assets/corpus"
python3 -m finetune train --model /tmp/xs --data assets/corpus --out /tmp/run-auto --device cuda --epochs 1 --json \
  2> "$OUT/auto.err" | tee "$OUT/auto.json" | python3 -c "import json,sys; m=json.load(sys.stdin); print({k: m[k] for k in ('block_size','batch_size','learning_rate','compiled','precision','steps','train_tokens_per_second','mfu','heldout_perplexity_before','heldout_perplexity_after')})"
python3 -c "from transformers import AutoModelForCausalLM; m = AutoModelForCausalLM.from_pretrained('/tmp/run-auto'); print('loads:', type(m).__name__)"
echo "== a batch that cannot fit"
mkdir -p /tmp/big && for i in $(seq 1 30); do cp -r assets/corpus /tmp/big/c$i; done
python3 -m finetune train --model /tmp/xs --data /tmp/big --out /tmp/run-oom --device cuda --batch-size 4096 \
  --block-size 1024 --max-steps 2 > /dev/null 2> "$OUT/oom.err"
echo "exit code $?"; tail -2 "$OUT/oom.err"
