#!/usr/bin/env bash
# Rebuilds assets/tiny-japanese-gpt2, the embedded offline model, from the project's own corpus
# (assets/corpus/*.txt, original text written for this project). Takes about 15 minutes on 2 CPU cores.
# The same code path is the user feature `python -m finetune scratch`.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf assets/tiny-japanese-gpt2
python -m finetune scratch --data assets/corpus --out assets/tiny-japanese-gpt2 \
  --vocab-size 6000 --layers 4 --width 256 --heads 4 --context 512 \
  --epochs 16 --batch-size 16 --lr 2e-3 --warmup-steps 30 --heldout 0.05 --seed 1 --device cpu "$@"
