"""Fine-tune a causal LM on packed text blocks with transformers' Trainer: full, LoRA, or QLoRA
(LoRA on a base loaded in 4-bit NF4; CUDA and bitsandbytes only).

A run writes into its output folder:
  progress.jsonl        one JSON object per event (start, memory, step, eval, done/stopped/error): any UI follows it
  model.safetensors     (full) or adapter_model.safetensors + adapter_config.json (LoRA, QLoRA), config files
  tokenizer files       the (repaired) tokenizer, plus every other tokenizer file the base had
                        (spiece.model included, also for a base from the Hub)
  training_config.json  the settings as resolved (device, precision, learning rate …)
  metrics.json          before/after held-out loss and perplexity, tokens, speed
A file named STOP in the output folder (or a set `stop` event) ends training after the current step,
and the run is saved as usual.

Memory: the micro-batch (blocks per forward pass), gradient accumulation and gradient checkpointing
are fitted to the device's free memory (finetune/speed.py, `memory_plan`). If the first steps run
out of memory anyway, the micro-batch is halved and training starts again (a "memory" event in
progress.jsonl says so); only when even one block with checkpointing fails does the run stop with
the out-of-memory message. A LoRA run keeps its frozen base in bf16/fp16 when it trains in that
precision (half the memory of fp32 weights); a full fine-tune keeps fp32 master weights.
"""
from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import logging
import math
import os
import shutil
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from .data import Dataset, build_dataset, read_documents
from .devices import fast_precision, resolve_device
from .errors import FinetuneError
from .evaluate import heldout_loss, perplexity
from .failures import complete_checkpoints, discard_partial_saves, explained, is_out_of_memory
from .formats import ReadOptions
from .fused import FUSED_LOSS_CHOICES, fused_loss_trainer, use_fused_loss
from .lora import LoraSettings, adapted_input_features, adapter_input_bytes, parameter_counts, with_lora
from .models import DEFAULT_BASE, ModelSource, QLoRAUnavailable, load_model, load_tokenizer_for, qlora_problem, \
    resolve_source
from .speed import (CHECKPOINTING, CPU_ACTIVATION_CAP, ModelFootprint, MemoryPlan, default_batch_size, default_block_size,
                    estimated_tokens, intermediate_size, memory_budget, memory_plan, mfu, peak_memory_mb,
                    should_compile, smaller_plan, training_bytes)
from .speed import (FULL_LR, LORA_LR, default_epochs, default_eval_interval, default_lr, default_optimizer,
                    default_precision,
                    set_cpu_threads)

METHODS = ("full", "lora", "qlora")
ADAPTER_METHODS = ("lora", "qlora")  # methods whose output is a peft adapter
COMPILE_CHOICES = ("auto", "on", "off")
RETRY_STEPS = 10  # an out-of-memory error within this many steps of a start is retried with a smaller micro-batch
EVAL_TOKENS = 16 * 1024  # tokens per held-out batch: its fp32 logits stay near 2 GB with a 32k vocabulary
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
STOP_FILE = "STOP"
PROGRESS_FILE = "progress.jsonl"
METRICS_FILE = "metrics.json"
CONFIG_FILE = "training_config.json"

logger = logging.getLogger(__name__)


@dataclass
class TrainSettings:
    """Everything a training run needs; the CLI flags and the studio's fields map onto these."""
    data: list[str] = field(default_factory=list, metadata={"help": "text files or folders of .txt files"})
    out: str = field(default="", metadata={"help": "output folder for the trained model"})
    model: str = field(default=DEFAULT_BASE, metadata={"help": "base model: Hub id or local folder"})
    method: str = field(default="full", metadata={
        "help": "full (all weights), lora (small adapter) or qlora (adapter on a 4-bit base; CUDA and bitsandbytes)"})
    epochs: float = field(default=0.0, metadata={
        "help": "passes over the training blocks; 0 = auto (3 as in the seed recipe, 2 for texts of 200k+ tokens)"})
    max_steps: int = field(default=-1, metadata={"help": "optimizer steps; > 0 overrides epochs"})
    block_size: int = field(default=0, metadata={
        "help": "tokens per training block; 0 = auto (128 on CPU as in the seed recipe, up to 1024 on GPU)"})
    batch_size: int = field(default=0, metadata={
        "help": "blocks per optimizer step; 0 = auto (8 on CPU; on GPU up to 64x1024 tokens, fewer for models "
                "over 800M parameters)"})
    micro_batch_size: int = field(default=0, metadata={
        "help": "blocks per forward pass; 0 = auto (the most that fit in the device's free memory)"})
    grad_accum: int = field(default=0, metadata={
        "help": "micro-batches per optimizer step (gradient accumulation); 0 = auto (batch size / micro-batch)"})
    gradient_checkpointing: str = field(default="auto", metadata={
        "help": "recompute activations in the backward pass to save memory: auto (only when one block does not "
                "fit otherwise), on, off"})
    fused_loss: str = field(default="auto", metadata={
        "help": "output layer and loss computed together in chunks (liger-kernel), saving the logits' memory: "
                "auto (on a CUDA GPU where liger-kernel is installed), on, off"})
    lr: float | None = field(default=None, metadata={
        "help": "learning rate; default 5e-5 full, 2e-4 LoRA, scaled up with sqrt(tokens per step / 1024)"})
    heldout: float = field(default=0.1, metadata={"help": "share of the text held out to measure the result"})
    seed: int = field(default=42, metadata={"help": "seed for the held-out split, data order and init"})
    device: str = field(default="auto", metadata={"help": "auto, cpu or cuda"})
    precision: str = field(default="auto", metadata={"help": "auto (bf16 where fast, else fp32), fp32, bf16, fp16"})
    eval_steps: int = field(default=0, metadata={"help": "held-out evaluation every N steps; 0 = about 10 times per run"})
    save_steps: int = field(default=200, metadata={"help": "checkpoint every N steps (for --resume)"})
    warmup_steps: int = field(default=0, metadata={"help": "linear learning-rate warm-up steps"})
    resume: bool = field(default=False, metadata={"help": "continue from the last checkpoint in the output folder"})
    dropout: float | None = field(default=None, metadata={
        "help": "dropout of the model's layers while training; default: the model's own (0.1 for GPT-2)"})
    compile: str = field(default="auto", metadata={
        "help": "torch.compile: auto (on a GPU for runs of 20M+ tokens), on, off; falls back to eager if it fails"})
    lora: LoraSettings = field(default_factory=LoraSettings)
    reading: ReadOptions = field(default_factory=ReadOptions, metadata={
        "help": "how the data is read: encodings, NFKC, code blocks, blog drafts/comments/titles (finetune.formats)"})

    def __post_init__(self):
        if isinstance(self.lora, dict):
            self.lora = LoraSettings(**self.lora)
        if isinstance(self.reading, dict):
            self.reading = ReadOptions(**self.reading)
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.epochs < 0:
            raise ValueError(f"epochs must be 0 (auto) or positive, got {self.epochs}")
        if self.block_size != 0 and self.block_size < 8:
            raise ValueError(f"block size must be 0 (auto) or at least 8 tokens, got {self.block_size}")
        if self.batch_size < 0:
            raise ValueError(f"batch size must be 0 (auto) or at least 1, got {self.batch_size}")
        if self.micro_batch_size < 0 or self.grad_accum < 0:
            raise ValueError("micro-batch size and gradient accumulation must be 0 (auto) or at least 1")
        if self.batch_size and self.micro_batch_size > self.batch_size:
            raise ValueError(f"micro-batch size {self.micro_batch_size} is larger than the batch size {self.batch_size}")
        if self.batch_size and self.micro_batch_size and self.grad_accum \
                and self.micro_batch_size * self.grad_accum != self.batch_size:
            raise ValueError(f"batch size {self.batch_size} is not micro-batch size {self.micro_batch_size} x "
                             f"gradient accumulation {self.grad_accum}; give two of the three")
        if self.gradient_checkpointing not in CHECKPOINTING:
            raise ValueError(f"gradient checkpointing must be one of {CHECKPOINTING}, got {self.gradient_checkpointing!r}")
        if self.fused_loss not in FUSED_LOSS_CHOICES:
            raise ValueError(f"fused loss must be one of {FUSED_LOSS_CHOICES}, got {self.fused_loss!r}")
        if self.dropout is not None and not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.compile not in COMPILE_CHOICES:
            raise ValueError(f"compile must be one of {COMPILE_CHOICES}, got {self.compile!r}")
        if self.lr is not None and not 0 < self.lr < 1:
            raise ValueError(f"learning rate must be in (0, 1), got {self.lr}")
        if not 0 <= self.heldout < 0.9:
            raise ValueError(f"held-out share must be in [0, 0.9), got {self.heldout}")

    @property
    def learning_rate(self) -> float:
        """The learning rate for a seed-sized step (8 x 128 tokens); `resolved` scales the default."""
        return self.lr if self.lr is not None else (LORA_LR if self.adapter else FULL_LR)

    @property
    def adapter(self) -> bool:
        """Does this run train a LoRA adapter (lora, qlora) rather than every weight?"""
        return self.method in ADAPTER_METHODS


@dataclass(frozen=True)
class Fit:
    """What memory fitting knows about a run: the model's size and footprint, the device's budget,
    and whether the loss is fused."""
    parameters: int = 0
    footprint: ModelFootprint | None = None
    budget: int | None = None
    fused_loss: bool = False
    activation_cap: int | None = None  # speed.CPU_ACTIVATION_CAP on a CPU


def resolved(s: TrainSettings, device: str, dataset: Dataset, fit: Fit | None = None) -> TrainSettings:
    """`s` with the automatic choices made for this device, model and data: blocks per step (by
    model size), micro-batch, gradient accumulation and checkpointing (by free memory), learning
    rate, torch.compile and the fused loss (the block size was fixed when the data was packed)."""
    fit = fit or Fit()
    s = dataclasses.replace(s, epochs=s.epochs or default_epochs(dataset.train_tokens))
    blocks = len(dataset.train_blocks)
    requested = s.batch_size or s.micro_batch_size * s.grad_accum
    batch = requested or default_batch_size(device, dataset.block_size, blocks, s.epochs, s.max_steps, fit.parameters)
    batch = min(batch, blocks)  # a step never holds more blocks than there are
    plan = memory_plan(fit.footprint, dataset.block_size, batch, fit.budget, device, s.gradient_checkpointing,
                       min(s.micro_batch_size, batch), s.grad_accum, fit.fused_loss, fit.activation_cap)
    batch = plan.micro_batch * plan.grad_accum
    lr = s.lr if s.lr is not None else default_lr("lora" if s.adapter else s.method, batch * dataset.block_size)
    planned = steps_for(s, blocks, batch) * batch * dataset.block_size
    compile_ = "on" if should_compile(s.compile, device, planned) else "off"
    return dataclasses.replace(s, block_size=dataset.block_size, batch_size=batch, micro_batch_size=plan.micro_batch,
                               grad_accum=plan.grad_accum, gradient_checkpointing=on_off(plan.checkpointing),
                               fused_loss=on_off(fit.fused_loss), lr=lr, compile=compile_)


def on_off(flag: bool) -> str:
    return "on" if flag else "off"


def estimated_bytes(s: TrainSettings, fit: Fit, device: str) -> int | None:
    """The memory estimate for resolved settings `s` (None without a footprint)."""
    if fit.footprint is None:
        return None
    return training_bytes(fit.footprint, s.micro_batch_size, s.block_size, device, s.gradient_checkpointing == "on",
                          s.fused_loss == "on")


def model_footprint(model, precision: str, dropout: float | None) -> ModelFootprint:
    """The memory footprint of `model` as it will be trained (after LoRA is applied), for speed.memory_plan."""
    config = model.config
    trainable, _ = parameter_counts(model)
    names = [name for name, _ in model.named_modules()]
    gated = any(name.endswith(("gate_proj", "gate_up_proj")) for name in names)
    gelu_ops = getattr(config, "activation_function", "") == "gelu_new"  # GPT-2's tanh GELU, written as separate ops
    attention_dropout = dropout if dropout is not None else (
        getattr(config, "attn_pdrop", None) or getattr(config, "attention_dropout", 0.0) or 0.0)
    embeddings = model.get_input_embeddings().weight
    half = precision in ("bf16", "fp16")
    return ModelFootprint(
        weight_bytes=sum(p.numel() * p.element_size() for p in model.parameters()), trainable=trainable,
        hidden=config.hidden_size, layers=config.num_hidden_layers, vocab=config.vocab_size,
        intermediate=intermediate_size(config), heads=config.num_attention_heads,
        mlp_activations=4 if gated else 5 if gelu_ops else 2,
        norm_upcast=any(type(m).__name__.endswith("RMSNorm") for m in model.modules()),
        activation_bytes=2 if half else 4, residual_bytes=embeddings.element_size(),
        adapter_inputs=adapted_input_features(model) // max(1, config.num_hidden_layers),
        adapter_input_bytes=adapter_input_bytes(model),
        attention_dropout=attention_dropout > 0, half_copies=half)


def set_dropout(model, p: float):
    """Every dropout layer of the model at probability `p` (before LoRA adds its own)."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = p


def block_size_for(s: TrainSettings, device: str, model, documents=None) -> int:
    """The requested block size, or the device's default for this much text; never beyond the
    model's context."""
    context = model.config.max_position_embeddings
    if s.block_size:
        return min(s.block_size, context)
    characters = sum(len(d.text) + len(d.prompt) for d in documents) if documents is not None else None
    return default_block_size(device, context, estimated_tokens(characters) if characters is not None else None)


class BlockDataset(torch.utils.data.Dataset):
    """Packed blocks as Trainer examples. Labels are the inputs (the model shifts them) unless
    `labels` masks some tokens with -100 (Q&A prompts)."""

    def __init__(self, blocks: torch.Tensor, labels: torch.Tensor | None = None):
        self.blocks = blocks
        self.labels = labels if labels is not None else blocks

    def __len__(self):
        return len(self.blocks)

    def __getitem__(self, i):
        return {"input_ids": self.blocks[i], "labels": self.labels[i]}


def is_main_process() -> bool:
    """False on the other ranks of a `torchrun` / `accelerate launch` data-parallel run: only rank 0
    writes the log and the output folder."""
    return int(os.environ.get("RANK", "0")) == 0


class ProgressLog:
    """Appends events to progress.jsonl (one JSON object per line, flushed at once); silent on
    ranks other than 0."""

    def __init__(self, path: Path, on_event=None):
        self.path = path
        self.on_event = on_event
        self.lock = threading.Lock()
        self.enabled = is_main_process()

    def write(self, event: str, **fields):
        if not self.enabled:
            return
        record = {"event": event, "time": round(time.time(), 3), **fields}
        with self.lock, open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
        if self.on_event:
            self.on_event(record)


def eval_interval(s: TrainSettings, total_steps: int, heldout_tokens: int = 0) -> int:
    return s.eval_steps or default_eval_interval(total_steps, s.batch_size * s.block_size, heldout_tokens)


class StepClock:
    """Training time per optimizer step without stalling a GPU: it waits for the GPU only where a
    window of steps is closed (logging points, where evaluation and checkpoints also happen, so
    their time stays out), and leaves out the first WARMUP_STEPS steps (allocation, torch.compile)
    when the run is longer than that."""
    WARMUP_STEPS = 2

    def __init__(self, now=time.perf_counter):
        self.now = now            # the clock read at window edges (tests pass one they control)
        self.seconds = 0.0        # timed seconds, in whole windows between synced points
        self.steps = 0            # steps inside those windows
        self.window_start = None  # start of the open window
        self.window_steps = 0
        self.first = None         # (seconds, steps) of the warm-up windows, used for short runs
        self.ended = 0

    def step_begins(self, device):
        if self.window_start is None:
            self.sync(device)
            self.window_start = self.now()

    def step_ends(self, device, sync: bool):
        self.window_steps += 1
        self.ended += 1
        if sync or self.ended == self.WARMUP_STEPS:
            self.sync(device)
            elapsed = self.now() - self.window_start
            if self.ended <= self.WARMUP_STEPS:
                old = self.first or (0.0, 0)
                self.first = (old[0] + elapsed, old[1] + self.window_steps)
            else:
                self.seconds += elapsed
                self.steps += self.window_steps
            self.window_start, self.window_steps = None, 0

    @property
    def steps_per_second(self) -> float:
        seconds, steps = (self.seconds, self.steps) if self.steps else (self.first or (0.0, 0))
        return steps / seconds if seconds else 0.0

    @staticmethod
    def sync(device):
        if getattr(device, "type", device) == "cuda":
            torch.cuda.synchronize()


def make_callback(log: ProgressLog, out: Path, stop: threading.Event, tokens_per_step: int,
                  dataset: Dataset, batch_size: int, eval_every: int):
    """A TrainerCallback that times optimizer steps, logs progress, measures the held-out loss every
    `eval_every` steps (with evaluate.heldout_loss, the same measure as before/after: Trainer's own
    evaluation divides by one token per block too many), and honours the stop flag."""
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        def __init__(self):
            self.clock = StepClock()
            self.stopped = False
            self.diverged_at = None  # the step whose logged loss was NaN/inf
            self.last_eval = None    # (step, held-out loss) of the latest evaluation

        def loss_at(self, step: int) -> float | None:
            """The held-out loss measured after `step`, if the last evaluation was there."""
            return self.last_eval[1] if self.last_eval and self.last_eval[0] == step else None

        def on_step_begin(self, args, state, control, **kw):
            self.clock.step_begins(args.device)

        def on_step_end(self, args, state, control, **kw):
            step = state.global_step
            due = step % eval_every == 0 or step == state.max_steps
            self.clock.step_ends(args.device, sync=due or step % args.logging_steps == 0)
            if stop.is_set() or (out / STOP_FILE).exists():
                self.stopped = True
                control.should_training_stop = True
            if log.enabled and len(dataset.heldout_blocks) and due:  # rank 0 measures for everyone
                loss = heldout_loss(kw["model"], dataset.heldout_blocks, batch_size, dataset.heldout_labels)
                self.last_eval = (step, loss)
                log.write("eval", step=step, heldout_loss=loss, heldout_perplexity=perplexity(loss))

        @property
        def tokens_per_second(self) -> float:
            return self.clock.steps_per_second * tokens_per_step

        def on_log(self, args, state, control, logs=None, **kw):
            logs = logs or {}
            if "loss" in logs and not math.isfinite(logs["loss"]):
                # Stop before the next checkpoint would save NaN weights over the last good one.
                self.diverged_at = state.global_step
                control.should_training_stop = True
                control.should_save = False
                return
            if "loss" in logs:
                per_step = 1 / self.clock.steps_per_second if self.clock.steps_per_second else 0.0
                log.write("step", step=state.global_step, max_steps=state.max_steps,
                          epoch=round(state.epoch or 0.0, 3), loss=logs["loss"],
                          lr=logs.get("learning_rate"), tokens_per_second=round(self.tokens_per_second, 1),
                          eta_seconds=round(per_step * (state.max_steps - state.global_step), 1))

    return Progress()


def training_arguments(s: TrainSettings, device: str, precision: str, checkpoints: Path, total_steps: int,
                       heldout_tokens: int = 0):
    """TrainingArguments for this run; every choice that differs from Trainer's defaults is explained."""
    from transformers import TrainingArguments
    eval_steps = eval_interval(s, total_steps, heldout_tokens)
    return TrainingArguments(
        output_dir=str(checkpoints),
        per_device_train_batch_size=s.micro_batch_size or s.batch_size,
        gradient_accumulation_steps=s.grad_accum or 1,
        learning_rate=s.learning_rate,
        num_train_epochs=s.epochs,
        max_steps=s.max_steps,
        warmup_steps=s.warmup_steps,
        seed=s.seed,
        use_cpu=device == "cpu",
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        eval_strategy="no",  # the progress callback measures the held-out part itself
        # A live plot needs points early; logging on every checkpoint step lets the NaN guard veto
        # a checkpoint before it is written.
        logging_steps=math.gcd(max(1, min(10, eval_steps)), s.save_steps),
        logging_nan_inf_filter=False,  # Trainer would hide NaN losses from the log; we must see them
        save_strategy="steps",
        save_steps=s.save_steps,
        save_total_limit=1,          # checkpoints exist only to resume; the result is saved apart
        report_to=[],                # no wandb/tensorboard surprises
        disable_tqdm=True,           # progress goes to progress.jsonl instead
        dataloader_pin_memory=device == "cuda",
        # Compiled graphs are specialised to the batch shape: a short last batch would compile again.
        dataloader_drop_last=s.compile == "on",
        torch_compile=s.compile == "on",
        tf32=device == "cuda" and torch.cuda.get_device_capability()[0] >= 8,  # fp32 matmuls on tensor cores
        optim=default_optimizer(device),
        ddp_find_unused_parameters=False,  # every parameter is used; the search costs a graph walk per step
    )


def resolve_precision(requested: str, device: str) -> str:
    if requested == "auto":
        return fast_precision(device)
    if requested == "fp16" and device == "cpu":
        raise FinetuneError("fp16 training needs a GPU; use bf16 or fp32 on CPU")
    return requested


def steps_for(s: TrainSettings, blocks: int, batch_size: int | None = None) -> int:
    """Optimizer steps the run will take (as Trainer counts them: micro-batches per epoch, then
    optimizer steps of `grad_accum` micro-batches, a short last one included)."""
    if s.max_steps > 0:
        return s.max_steps
    batch = batch_size or s.batch_size
    micro = min(s.micro_batch_size, batch) or batch
    accum = math.ceil(batch / micro)
    micro_batches = blocks // micro if s.compile == "on" and blocks >= micro else math.ceil(blocks / micro)
    per_epoch = math.ceil(micro_batches / accum)
    return max(1, math.ceil(per_epoch * s.epochs))


def save_result(trainer, tokenizer, source: ModelSource, out: Path):
    """Write the final model and tokenizer to a temporary folder, then move the files into `out`
    so that `out` never holds a half-written model. Every rank calls it; only rank 0 writes.
    Tokenizer files of the base that the tokenizer does not write itself (spiece.model, and the
    like) are copied, so the output tokenizes exactly as its base and the parity check works on it."""
    staging = out / ".saving"
    if trainer.is_world_process_zero():
        shutil.rmtree(staging, ignore_errors=True)
    trainer.save_model(str(staging))  # a collective call under data parallelism
    if not trainer.is_world_process_zero():
        return
    tokenizer.save_pretrained(str(staging))
    base_files = base_tokenizer_files(source)
    for name, path in base_files.items():
        if not (staging / name).exists():
            shutil.copy(path, staging / name)
    if "tokenizer_config.json" in base_files:
        keep_lowercasing(base_files["tokenizer_config.json"], staging / "tokenizer_config.json")
    (staging / "training_args.bin").unlink(missing_ok=True)  # a pickle; training_config.json says it all
    for item in staging.iterdir():
        os.replace(item, out / item.name)
    staging.rmdir()


def base_tokenizer_files(source: ModelSource) -> dict[str, Path]:
    """The tokenizer files (share.TOKENIZER_FILES) a base model has: from its folder, or for a Hub id
    from the local Hub cache, fetching those not cached yet when the Hub was reachable."""
    from .share import TOKENIZER_FILES
    folder = Path(source.path)
    if folder.is_dir():
        return {name: folder / name for name in TOKENIZER_FILES if (folder / name).is_file()}
    found = {}
    for name in TOKENIZER_FILES:
        path = hub_file(source, name)
        if path is not None:
            found[name] = path
    return found


def keep_lowercasing(base_config: Path, saved_config: Path):
    """Carry the base's `do_lower_case` into the saved tokenizer_config.json: the saved tokenizer
    lower-cases by itself (tokens.repaired_tokenizer), and the parity check needs the flag to compare
    it with sentencepiece on lower-cased text."""
    lowercase = json.loads(base_config.read_text(encoding="utf-8")).get("do_lower_case")
    if lowercase is None or not saved_config.is_file():
        return
    config = json.loads(saved_config.read_text(encoding="utf-8"))
    config["do_lower_case"] = lowercase
    saved_config.write_text(json.dumps(config, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def hub_file(source: ModelSource, name: str) -> Path | None:
    """One file of a Hub model: its cached copy, else (Hub reachable) downloaded; None if the repo
    has no such file or it cannot be fetched now."""
    from huggingface_hub import hf_hub_download, try_to_load_from_cache
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError
    cached = try_to_load_from_cache(source.path, name)
    if isinstance(cached, str):
        return Path(cached)
    if cached is not None or source.local_files_only:
        return None  # known to be missing, or offline: what the cache holds is all there is
    try:
        return Path(hf_hub_download(source.path, name))
    except (EntryNotFoundError, LocalEntryNotFoundError):
        return None
    except (HfHubHTTPError, OSError) as err:
        logger.warning("could not fetch %s of %s: %s", name, source.path, err)
        return None


def write_json(path: Path, data: dict):
    tmp = path.with_suffix(".tmp")
    try:
        tmp.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")
    except OSError:
        tmp.unlink(missing_ok=True)  # a full disk: leave no half-written file behind
        raise
    os.replace(tmp, path)


def prepare_output(out: Path, resume: bool):
    """Create the output folder; refuse to mix a new run into an old run's files."""
    if not resume and out.exists() and any(out.glob(METRICS_FILE)) and any(out.glob("*.safetensors")):
        raise FinetuneError(f"{out} already holds a trained model; choose another --out folder or delete it")
    out.mkdir(parents=True, exist_ok=True)
    if not is_main_process():
        return
    (out / STOP_FILE).unlink(missing_ok=True)
    discard_partial_saves(out)  # left by a killed run: never resumed from, never kept by rotation
    if not resume:
        (out / PROGRESS_FILE).unlink(missing_ok=True)


def last_checkpoint(out: Path) -> str | None:
    """The newest checkpoint written to the end (a save cut short by a kill or a full disk is skipped)."""
    done = complete_checkpoints(out / "checkpoints")
    return str(done[-1]) if done else None


def settings_from_run(out: str | Path) -> TrainSettings:
    """The settings of an earlier run in `out` (its training_config.json), marked to resume."""
    config = Path(out) / CONFIG_FILE
    if not config.is_file():
        raise FinetuneError(f"{out} holds no {CONFIG_FILE}: nothing to resume")
    saved = json.loads(config.read_text(encoding="utf-8"))
    names = {f.name for f in dataclasses.fields(TrainSettings)}
    return TrainSettings(**{k: v for k, v in saved.items() if k in names} | {"resume": True})


class Diverged(FinetuneError):
    """The loss became NaN or infinite."""


def train(s: TrainSettings, dataset: Dataset | None = None, stop: threading.Event | None = None,
          on_event=None, base_label: str | None = None, progress=None) -> dict:
    """Run one fine-tuning job and return its metrics (also written to metrics.json).
    `base_label` names the base model in the reports when `s.model` is a temporary folder;
    `progress(done, total)` follows the tokenization of `s.data` (finetune.data.build_dataset).
    Failures are logged as an "error" event in progress.jsonl, then raised."""
    if not s.out:
        raise FinetuneError("no output folder given")
    out = Path(s.out)
    prepare_output(out, s.resume)
    log = ProgressLog(out / PROGRESS_FILE, on_event)
    try:
        return run_training(s, out, log, dataset, stop or threading.Event(), base_label or s.model, progress)
    except Exception as err:
        cut_short = discard_partial_saves(out) if is_main_process() else []
        failure = explained(err, settings_in_use(s, out), out, cut_short)
        log_failure(log, failure)
        if failure is err:
            raise
        raise failure from err


def settings_in_use(s: TrainSettings, out: Path) -> TrainSettings:
    """The settings as resolved for this run (automatic batch and block sizes filled in), once
    training_config.json has been written; `s` before that."""
    try:
        return settings_from_run(out) if (out / CONFIG_FILE).is_file() else s
    except (ValueError, TypeError, OSError, json.JSONDecodeError):
        return s


def log_failure(log: ProgressLog, failure: Exception):
    """The "error" event; when even that cannot be written (a disk still full), the server log says so."""
    try:
        log.write("error", message=str(failure), kind=type(failure).__name__)
    except OSError as err:
        logger.error("could not write the error event to %s (%s): %s", log.path, err, failure)


def run_training(s: TrainSettings, out: Path, log: ProgressLog, dataset: Dataset | None,
                 stop: threading.Event, base_label: str, progress=None) -> dict:
    from transformers import set_seed
    device = resolve_device(s.device)
    if s.method == "qlora" and qlora_problem(device):
        raise QLoRAUnavailable(qlora_problem(device))
    precision = resolve_precision(s.precision, device)
    set_seed(s.seed)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    resume_from = last_checkpoint(out) if s.resume else None
    if s.resume and resume_from is None:
        raise FinetuneError(f"{out} has no checkpoint to resume from (checkpoints are written every {s.save_steps} steps)")

    source = resolve_source(s.model)
    if source.adapter:
        raise FinetuneError(f"{s.model} is a LoRA adapter; train from its base model ({source.base}) instead")
    tokenizer, parity = load_tokenizer_for(source)
    model = load_model(source, device, weight_dtype(s.method, precision), quantized=s.method == "qlora")
    if s.dropout is not None:
        set_dropout(model, s.dropout)
    if dataset is None:
        documents = read_documents(s.data, s.reading)
        dataset = build_dataset(documents, tokenizer, block_size_for(s, device, model, documents), s.heldout,
                                s.seed, progress)
    model = trainable_model(model, s)
    trainable, total = parameter_counts(model)
    footprint = model_footprint(model, precision, s.dropout)
    fit = Fit(parameters=total, footprint=footprint, budget=memory_budget(device, footprint.weight_bytes),
              fused_loss=use_fused_loss(s.fused_loss, device, model.config.model_type),
              activation_cap=CPU_ACTIVATION_CAP if device == "cpu" else None)
    requested, s = s, resolved(s, device, dataset, fit)
    if s.gradient_checkpointing == "on":
        enable_checkpointing(model)
    if s.precision == "auto":  # small GPU steps are faster in fp32 (speed.default_precision)
        precision = default_precision(device, s.batch_size * s.block_size, precision)
    if device == "cpu":
        set_cpu_threads()  # a container's CPU quota, not the host's cores
    total_steps = steps_for(s, len(dataset.train_blocks))
    write_config(out, s, base_label, device, precision, dataset)
    estimate = estimated_bytes(s, fit, device)
    log.write("resume" if resume_from else "start", model=base_label, method=s.method, device=device,
              precision=precision, block_size=s.block_size, batch_size=s.batch_size, lr=s.learning_rate,
              compile=s.compile, max_steps=total_steps, train_tokens=dataset.train_tokens,
              heldout_tokens=dataset.heldout_tokens, tokenizer_parity=parity.status, checkpoint=resume_from,
              micro_batch_size=s.micro_batch_size, grad_accum_steps=s.grad_accum,
              gradient_checkpointing=s.gradient_checkpointing == "on", fused_loss=s.fused_loss == "on",
              trainable_parameters=trainable, total_parameters=total, estimated_memory_mb=megabytes(estimate),
              memory_budget_mb=megabytes(fit.budget))
    if estimate is not None and fit.budget is not None and estimate > fit.budget:
        log.write("memory", message=f"a micro-batch of {s.micro_batch_size} block(s) of {s.block_size} tokens is "
                                    f"estimated at {megabytes(estimate):.0f} MB, more than the {megabytes(fit.budget):.0f} "
                                    f"MB usable on this {device}; trying anyway")

    loss_before = heldout_loss(model, dataset.heldout_blocks, eval_batch_for(s, dataset), dataset.heldout_labels)
    if not resume_from:
        log.write("eval", step=0, heldout_loss=loss_before, heldout_perplexity=perplexity(loss_before))
    trainer, callback, result, seconds, s, retries = train_fitting_memory(
        model, s, requested, fit, dataset, device, precision, out, log, stop, total_steps, resume_from, base_label)
    if callback.diverged_at is not None:
        raise Diverged(
            f"the loss became NaN/inf at step {callback.diverged_at}: the learning rate ({s.learning_rate}) is "
            f"probably too high, or fp16 overflowed (try bf16/fp32); the last good checkpoint is kept in "
            f"{out / 'checkpoints'}")

    loss_after = callback.loss_at(result.global_step)  # the last step's evaluation, when there was one
    if loss_after is None:
        loss_after = heldout_loss(trainer.model, dataset.heldout_blocks, eval_batch_for(s, dataset),
                                  dataset.heldout_labels)
    metrics = run_metrics(s, dataset, base_label, result, seconds, callback, loss_before, loss_after,
                          device, precision, parity.status, trainer.args.world_size)
    metrics["mfu"] = training_mfu(metrics["train_tokens_per_second"], model, dataset.block_size, device,
                                  trainer.args.world_size)
    metrics.update(micro_batch_size=s.micro_batch_size, grad_accum_steps=s.grad_accum,
                   gradient_checkpointing=s.gradient_checkpointing == "on", peak_memory_mb=peak_memory_mb(device),
                   trainable_parameters=trainable, total_parameters=total, fused_loss=s.fused_loss == "on",
                   estimated_memory_mb=megabytes(estimated_bytes(s, fit, device)), memory_retries=retries)
    save_result(trainer, tokenizer, source, out)
    if trainer.is_world_process_zero():
        write_json(out / METRICS_FILE, metrics)  # before the checkpoints go: a full disk here leaves them
        shutil.rmtree(out / "checkpoints", ignore_errors=True)
    log.write("stopped" if callback.stopped else "done", **metrics)
    return metrics


def megabytes(n: int | None) -> float | None:
    return None if n is None else round(n / 2**20, 1)


def weight_dtype(method: str, precision: str):
    """The dtype the base is loaded in: fp32 master weights for a full fine-tune; for LoRA and
    QLoRA (compute type of the 4-bit layers) the training precision, since only the fp32 adapter
    is updated and bf16/fp16 halve the frozen base's memory."""
    if method == "full" or precision == "fp32":
        return torch.float32
    return torch.bfloat16 if precision == "bf16" else torch.float16


def trainable_model(model, s: TrainSettings):
    """The model as it is trained: itself (full), or wrapped with LoRA adapters (lora; qlora after
    peft's preparation of a 4-bit model: fp32 norms and embeddings, inputs that carry gradients)."""
    if not s.adapter:
        return model
    if s.method == "qlora":
        from peft import prepare_model_for_kbit_training
        # checkpointing is the memory plan's choice (enable_checkpointing), not peft's default
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    return with_lora(model, s.lora)


def enable_checkpointing(model):
    """Gradient (activation) checkpointing on every layer of `model` (or the base of a peft model),
    non-reentrant: that kind needs no gradient on the inputs, so frozen embeddings (LoRA) work."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    kwargs = {"use_reentrant": False}
    if hasattr(base, "activation_checkpointing_enable"):  # transformers 5.24 and later
        base.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    base.config.use_cache = False  # no generation while training; the cache would hold memory


def eval_batch_for(s: TrainSettings, dataset: Dataset) -> int:
    """Blocks per held-out batch: no more than a training micro-batch (which fits), nor EVAL_TOKENS."""
    return max(1, min(s.micro_batch_size or s.batch_size, EVAL_TOKENS // dataset.block_size))


def write_config(out: Path, s: TrainSettings, base_label: str, device: str, precision: str, dataset: Dataset):
    if is_main_process():
        write_json(out / CONFIG_FILE, asdict(s) | {
            "resume": False, "base_model": base_label, "device": device, "precision": precision,
            "heldout_documents": dataset.heldout_documents})


def build_trainer(model, s: TrainSettings, dataset: Dataset, device: str, precision: str, out: Path,
                  log: ProgressLog, stop: threading.Event, total_steps: int):
    """A Trainer (with the fused loss when it is on) and its progress callback."""
    from transformers import PrinterCallback, Trainer
    callback = make_callback(log, out, stop, s.batch_size * dataset.block_size, dataset, eval_batch_for(s, dataset),
                             eval_interval(s, total_steps, dataset.heldout_tokens))
    args = training_arguments(s, device, precision, out / "checkpoints", total_steps, dataset.heldout_tokens)
    trainer_class = fused_loss_trainer() if s.fused_loss == "on" else Trainer
    trainer = trainer_class(model=model, args=args, train_dataset=BlockDataset(dataset.train_blocks, dataset.train_labels),
                            callbacks=[callback])
    trainer.remove_callback(PrinterCallback)  # it prints raw dicts to stdout; progress.jsonl has them
    return trainer, callback


def train_fitting_memory(model, s: TrainSettings, requested: TrainSettings, fit: Fit, dataset: Dataset, device: str,
                         precision: str, out: Path, log: ProgressLog, stop: threading.Event, total_steps: int,
                         resume_from: str | None, base_label: str):
    """Train; when the first steps run out of memory with an automatic micro-batch, halve it (then
    turn checkpointing on) and start again, saying so in the log. Returns (trainer, callback,
    result, seconds, settings as used, retries)."""
    from transformers import set_seed
    retries = 0
    while True:
        set_seed(s.seed)
        trainer, callback = build_trainer(model, s, dataset, device, precision, out, log, stop, total_steps)
        started = time.perf_counter()
        try:
            with compile_fallback():
                result = trainer.train(resume_from_checkpoint=resume_from)
            return trainer, callback, result, time.perf_counter() - started, s, retries
        except Exception as err:  # re-raised unless it is an out-of-memory error that a smaller micro-batch may fix
            smaller = retry_plan(err, s, requested, fit, device, callback.clock.ended)
            if smaller is None:
                raise
        trainer.accelerator.free_memory()
        trainer = callback = None
        release_memory(model, device)
        message = (f"out of memory with a micro-batch of {s.micro_batch_size} blocks of {s.block_size} tokens; "
                   f"trying again with {smaller.micro_batch} x {smaller.grad_accum} accumulation steps"
                   + (", gradient checkpointing on" if smaller.checkpointing else ""))
        if smaller.checkpointing and s.gradient_checkpointing != "on":
            enable_checkpointing(model)
        s = dataclasses.replace(s, micro_batch_size=smaller.micro_batch, grad_accum=smaller.grad_accum,
                                gradient_checkpointing=on_off(smaller.checkpointing))
        retries += 1
        logger.warning(message)
        write_config(out, s, base_label, device, precision, dataset)
        log.write("memory", message=message, micro_batch_size=s.micro_batch_size, grad_accum_steps=s.grad_accum,
                  gradient_checkpointing=smaller.checkpointing, estimated_memory_mb=megabytes(smaller.estimated_bytes))


def retry_plan(err: Exception, s: TrainSettings, requested: TrainSettings, fit: Fit, device: str,
               steps_done: int) -> MemoryPlan | None:
    """The smaller setting to retry with after `err`, or None (not out of memory, the micro-batch
    was set by hand, training was past its first steps, or nothing smaller is left)."""
    if not is_out_of_memory(err) or requested.micro_batch_size or requested.grad_accum or steps_done >= RETRY_STEPS:
        return None
    current = MemoryPlan(s.micro_batch_size, s.grad_accum, s.gradient_checkpointing == "on", None, fit.budget)
    return smaller_plan(current, fit.footprint, s.block_size, s.batch_size, device, requested.gradient_checkpointing,
                        s.fused_loss == "on")


def release_memory(model, device: str):
    """Free what a failed attempt left: gradients, then cached blocks."""
    model.zero_grad(set_to_none=True)
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()


def run_metrics(s, dataset, base_label, result, seconds, callback, loss_before, loss_after, device,
                precision, parity, world_size: int = 1) -> dict:
    """metrics.json: the contract fields first, then details. With data parallelism each step
    trains `world_size` batches, and tokens/s counts all processes."""
    steps = result.global_step
    return {
        "base_model": base_label,
        "method": s.method,
        "train_tokens": dataset.train_tokens,
        "heldout_tokens": dataset.heldout_tokens,
        "steps": steps,
        "seconds": round(seconds, 2),
        "train_tokens_per_second": round(callback.tokens_per_second * world_size, 1),
        "heldout_loss_before": loss_before,
        "heldout_loss_after": loss_after,
        "heldout_perplexity_before": perplexity(loss_before),
        "heldout_perplexity_after": perplexity(loss_after),
        "tokens_seen": steps * s.batch_size * dataset.block_size * world_size,
        "final_train_loss": result.training_loss,
        "stopped_early": callback.stopped,
        "documents": dataset.documents,
        "characters": dataset.characters,
        "dropped_tokens": dataset.dropped_tokens,
        "block_size": dataset.block_size,
        "device": device,
        "precision": precision,
        "tokenizer_parity": parity,
        "processes": world_size,
        "batch_size": s.batch_size,
        "tokens_per_step": s.batch_size * dataset.block_size * world_size,
        "learning_rate": s.learning_rate,
        "compiled": s.compile == "on",
        "dropout": s.dropout,
    }


def training_mfu(tokens_per_second: float, model, block_size: int, device: str, world_size: int) -> float | None:
    """Model-FLOPs utilisation per GPU for a full fine-tune (None on CPU, for LoRA, whose backward
    pass skips most weight gradients, and for GPUs of unknown peak)."""
    if device != "cuda" or hasattr(model, "peft_config"):
        return None
    value = mfu(tokens_per_second / world_size, model.config, block_size, torch.cuda.get_device_name(0))
    return round(value, 4) if value is not None else None


@contextlib.contextmanager
def compile_fallback():
    """Where torch.compile cannot compile (no C compiler, an unsupported GPU or op), run that part
    eagerly instead of failing the run: torch._dynamo's documented `suppress_errors` switch."""
    import torch._dynamo
    with torch._dynamo.config.patch(suppress_errors=True):
        yield
