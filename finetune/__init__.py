"""Fine-tune small Japanese language models on your own text.

The pipeline, one module per step:
  tokens     load tokenizers correctly (sentencepiece parity, no EOS on prompts), show tokens
  models     find and load a model: Hub id, folder, or LoRA output; fail fast offline; QLoRA's 4-bit base
  hubmodels  a Hub model's size and access checked before any download; the default base; background fetch
  document   one text document and where it came from (what formats produce and data packs)
  formats    read txt/Aozora/md/html/jsonl/json/csv, blog exports, folders and zips; detect encodings; clean
  qa         question/answer pairs: one template for training, the playground and the model card
  prepare    the report on the user's text before training (files, tokens, blocks, preview, --dump)
  data       read documents, split a held-out part, pack into blocks
  lora       LoRA settings and the peft config
  speed      per-device defaults: step size, learning rate, epochs, compile, memory fitting
  fused      the fused linear cross-entropy (liger-kernel) where it runs
  train      fine-tune with transformers' Trainer; progress log, stop flag, metrics.json
  failures   out of memory and a full disk explained; saves cut short cleaned up, never resumed from
  evaluate   held-out loss and perplexity
  generate   sampling, streaming, reproducible seeds
  batching   many visitors' generations decoded together, each with its own settings and seed
  share      push a training output folder to the Hub (adapter, merged or both), or export a zip
  card       the model card of a shared model: Hub metadata, Japanese body, English summary
  scratch    a new tokenizer and model from the user's text
  devices    CPU/GPU choice and fast number formats
  cli        `python -m finetune …`

For long-running front ends (the studio):
  runner     one training job at a time in a child process, followed through its progress.jsonl
  workers    the child processes, one made ahead with its imports done (worker: the child's own entry)
  priority   CPU priority: training above the requests of a shared front end
  cache      loaded tokenizers and models shared by every request
  workspace  staged inputs, runs and exported zips, and who may open them
  bench      `python -m finetune bench`: the engine against the seed article's recipe
"""
__version__ = "0.1.0"
