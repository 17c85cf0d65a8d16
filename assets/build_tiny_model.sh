#!/usr/bin/env bash
# Rebuilds assets/tiny-japanese-gpt2, the embedded offline model, from the project's own corpus
# (assets/corpus/*.txt, original text written for this project). About 15 minutes on 2 CPU cores.
# The same code path is the user feature `python -m finetune scratch`. The new model is built
# beside the old one and swapped in only when training succeeded.
set -euo pipefail
cd "$(dirname "$0")/.."
staging=assets/.tiny-japanese-gpt2.new
rm -rf "$staging"
python -m finetune scratch --data assets/corpus --out "$staging" \
  --vocab-size 6000 --layers 4 --width 256 --heads 4 --context 512 \
  --epochs 6 --batch-size 16 --lr 2e-3 --warmup-steps 30 --heldout 0.05 --seed 1 --device cpu "$@"
rm -rf assets/tiny-japanese-gpt2
mv "$staging" assets/tiny-japanese-gpt2
