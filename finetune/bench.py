"""`python -m finetune bench`: the engine against the seed article's recipe, back to back.

Both train the same randomly initialised model with rinna/japanese-gpt2-xsmall's architecture (GPT-2,
6 layers, 512 wide, 8 heads, 32000 vocabulary, 37M parameters; speed does not depend on the weights)
on the same blocks of the project's own corpus, on the same machine, in the same process. Each figure
is printed as one JSON line. Ratios are what to compare across machines; absolute numbers are noisy.
"""
from __future__ import annotations

import json
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .devices import fast_precision, resolve_device

CORPUS = Path(__file__).resolve().parent.parent / "assets" / "corpus"


@dataclass
class BenchSettings:
    device: str = field(default="auto", metadata={"help": "auto, cpu or cuda"})
    steps: int = field(default=30, metadata={"help": "timed optimizer steps per recipe"})
    warmup: int = field(default=3, metadata={"help": "untimed steps first (allocations, compilation)"})

    def __post_init__(self):
        if self.steps < 1 or self.warmup < 0:
            raise ValueError("steps must be >= 1 and warmup >= 0")


def xsmall_model():
    """rinna/japanese-gpt2-xsmall's architecture, randomly initialised (seed 0)."""
    from transformers import GPT2Config, GPT2LMHeadModel
    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(vocab_size=32000, n_positions=1024, n_embd=512, n_layer=6, n_head=8,
                                      n_inner=2304, bos_token_id=1, eos_token_id=2, pad_token_id=3))


def corpus_blocks(block_size: int, count: int):
    """`count` blocks of real Japanese token ids (the embedded tokenizer over assets/corpus), repeated
    if the corpus is shorter, plus held-out blocks from documents the blocks do not use."""
    from .data import build_dataset, read_documents
    from .models import EMBEDDED_MODEL
    from .tokens import load_tokenizer
    tokenizer, _ = load_tokenizer(EMBEDDED_MODEL)
    data = build_dataset(read_documents([CORPUS]), tokenizer, block_size, heldout_fraction=0.1, seed=0)
    reps = -(-count // len(data.train_blocks))
    return data.train_blocks.repeat(reps, 1)[:count], data.heldout_blocks[:16], tokenizer


class StepClock:
    """Times optimizer steps after a warm-up, as a TrainerCallback."""

    def __new__(cls, warmup: int):
        from transformers import TrainerCallback

        class Clock(TrainerCallback):
            def __init__(self):
                self.start = None
                self.end = None

            def on_step_end(self, args, state, control, **kw):
                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                if state.global_step == warmup:
                    self.start = time.perf_counter()
                self.end = time.perf_counter()

        return Clock()


def seed_recipe(blocks, tokenizer, device: str, steps: int, warmup: int):
    """The article's recipe on today's transformers: DataCollatorForLanguageModeling(mlm=False) over
    128-token blocks, Trainer with default TrainingArguments (batch 8, fp32, AdamW, lr 5e-5)."""
    from transformers import DataCollatorForLanguageModeling, PrinterCallback, Trainer, TrainingArguments
    model = xsmall_model()
    clock = StepClock(warmup)
    rows = [{"input_ids": b} for b in blocks]
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(output_dir=tmp, use_cpu=device == "cpu", max_steps=steps + warmup,
                                 per_device_train_batch_size=8, report_to=[], save_strategy="no",
                                 logging_steps=10**9, disable_tqdm=True, seed=0)
        trainer = Trainer(model=model, args=args, train_dataset=rows, callbacks=[clock],
                          data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False))
        trainer.remove_callback(PrinterCallback)  # keep stdout to one JSON line per figure
        trainer.train()
    return model, clock.end - clock.start


def engine_run(blocks, heldout, tokenizer, device: str, steps: int, warmup: int):
    """The engine's own training path with its default settings for `device`."""
    from .data import Dataset
    from .train import TrainSettings, train
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        xsmall_model().save_pretrained(base)
        tokenizer.save_pretrained(base)  # the engine loads a model folder; the blocks are given
        data = Dataset(train_blocks=blocks, heldout_blocks=heldout, documents=1, characters=0,
                       train_tokens=blocks.numel(), heldout_tokens=heldout.numel(), dropped_tokens=0,
                       heldout_documents=[], block_size=blocks.shape[1])
        settings = TrainSettings(model=str(base), out=str(Path(tmp) / "out"), device=device,
                                 max_steps=steps + warmup, eval_steps=10**6, save_steps=10**6)
        metrics = train(settings, dataset=data)
    return metrics


def figure(name: str, **values):
    line = {"figure": name, **values}
    print(json.dumps(line, ensure_ascii=False), flush=True)
    return line


def tokenizer_latency():
    from .models import EMBEDDED_MODEL
    from .tokens import load_tokenizer, token_view
    tokenizer, _ = load_tokenizer(EMBEDDED_MODEL)
    text = ("今日は朝から雨が降っていたので、図書館で本を読んで過ごしました。" * 7)[:200]
    token_view(tokenizer, text)
    times = []
    for _ in range(50):
        t = time.perf_counter()
        token_view(tokenizer, text)
        times.append((time.perf_counter() - t) * 1000)
    return figure("tokenizer_view_ms", characters=len(text), median_ms=round(statistics.median(times), 3))


def generation_speed(device: str):
    """First-token latency and tokens/s of the xsmall architecture (greedy, fixed length)."""
    model = xsmall_model().to(device).eval()
    ids = torch.randint(4, 32000, (1, 12), device=device)
    with torch.no_grad():
        model.generate(ids, max_new_tokens=2, min_new_tokens=2, do_sample=False)
        t = time.perf_counter()
        model.generate(ids, max_new_tokens=1, min_new_tokens=1, do_sample=False)
        first = time.perf_counter() - t
        t = time.perf_counter()
        model.generate(ids, max_new_tokens=64, min_new_tokens=64, do_sample=False)
        total = time.perf_counter() - t
    return figure("generation", device=device, first_token_ms=round(first * 1000, 1),
                  tokens_per_second=round(64 / total, 1))


def run(settings: BenchSettings) -> list[dict]:
    from .evaluate import heldout_loss
    device = resolve_device(settings.device)
    n_blocks = 8 * (settings.steps + settings.warmup)
    blocks, heldout, tokenizer = corpus_blocks(128, n_blocks)
    tokens = settings.steps * 8 * 128
    peak = peak_memory_reset(device)
    seed_model, seed_seconds = seed_recipe(blocks, tokenizer, device, settings.steps, settings.warmup)
    seed_tps = tokens / seed_seconds
    seed_loss = heldout_loss(seed_model, heldout.to(device))
    results = [figure("seed_recipe", device=device, tokens_per_second=round(seed_tps, 1),
                      heldout_loss=round(seed_loss, 4), peak_memory_mb=peak())]
    peak = peak_memory_reset(device)
    metrics = engine_run(blocks, heldout, tokenizer, device, settings.steps, settings.warmup)
    results.append(figure("engine", device=device, precision=metrics["precision"],
                          tokens_per_second=metrics["train_tokens_per_second"],
                          heldout_loss=round(metrics["heldout_loss_after"], 4), peak_memory_mb=peak()))
    results.append(figure("ratio", device=device,
                          engine_over_seed=round(metrics["train_tokens_per_second"] / seed_tps, 2),
                          heldout_loss_delta=round(metrics["heldout_loss_after"] - seed_loss, 4),
                          fast_precision=fast_precision(device)))
    results.append(tokenizer_latency())
    results.append(generation_speed(device))
    return results


def peak_memory_reset(device: str):
    """Start measuring peak memory; returns a function that reads it in MB."""
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        return lambda: round(torch.cuda.max_memory_allocated() / 2**20, 1)
    import resource
    return lambda: round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
