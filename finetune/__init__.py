"""Fine-tune small Japanese language models on your own text.

The pipeline, one module per step:
  tokens    load tokenizers correctly (sentencepiece parity, no EOS on prompts), show tokens
  models    find and load a model: Hub id, folder, or LoRA output; fail fast offline
  formats   read txt/Aozora/md/html/jsonl/json/csv files, folders and zips; detect encodings; clean
  prepare   the report on the user's text before training (files, tokens, blocks, preview)
  data      read documents, split a held-out part, pack into blocks
  lora      LoRA settings and the peft config
  train     fine-tune with transformers' Trainer; progress log, stop flag, metrics.json
  failures  out of memory and a full disk explained; saves cut short cleaned up, never resumed from
  evaluate  held-out loss and perplexity
  generate  sampling, streaming, reproducible seeds
  share     push a training output folder to the Hub (adapter, merged or both), or export a zip
  card      the model card of a shared model: Hub metadata, Japanese body, English summary
  scratch   a new tokenizer and model from the user's text
  devices   CPU/GPU choice and fast number formats
  cli       `python -m finetune …`
"""
__version__ = "0.1.0"
