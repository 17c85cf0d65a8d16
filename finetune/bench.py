"""`python -m finetune bench`: the engine against the seed article's recipe, back to back.

Both train the same randomly initialised model with rinna/japanese-gpt2-xsmall's architecture (GPT-2,
6 layers, 512 wide, 8 heads, 32000 vocabulary, 37M parameters; speed does not depend on the weights)
on blocks of the project's own corpus, on the same machine, in the same process. Each figure is
printed as one JSON line. Ratios are what to compare across machines; absolute numbers are noisy.

Figures, in order:
  seed_recipe   the article's recipe: fp32, 8 blocks of 128 tokens, Trainer defaults
  engine        the engine with its defaults for a large corpus on this device (on a GPU: 64 blocks
                of 1024 tokens, bf16, torch.compile, fused AdamW; on a CPU the seed's step shape)
  equal_tokens  the engine with its defaults for the seed run's data, trained on exactly the seed's
                tokens: held-out loss against the seed's
  ratio         engine tokens/s over the seed's, and model-FLOPs utilisation on a GPU
  lever         (--levers) one line per alternative setting, for the tokens/s-by-setting plot
  tokenizer_view_ms, generation, startup
"""
from __future__ import annotations

import importlib.util
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .devices import cpu_has_fast_bf16, fast_precision, resolve_device
from .speed import COMPILE_MIN_TOKENS, flops_per_token, peak_flops, should_compile

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "assets" / "corpus"


@dataclass
class BenchSettings:
    device: str = field(default="auto", metadata={"help": "auto, cpu or cuda"})
    steps: int = field(default=30, metadata={"help": "timed optimizer steps of the seed recipe"})
    warmup: int = field(default=3, metadata={"help": "untimed seed-recipe steps first (allocations)"})
    engine_steps: int = field(default=0, metadata={
        "help": "optimizer steps of the engine's large-corpus run; 0 = as many as the seed's on CPU, 40 on GPU"})
    levers: bool = field(default=False, metadata={"help": "also time alternative settings (one 'lever' line each)"})
    plot: str = field(default="", metadata={"help": "write a tokens/s-by-setting bar chart (SVG) to this file"})
    startup: bool = field(default=True, metadata={"help": "time the studio's start (needs gradio)"})

    def __post_init__(self):
        if self.steps < 1 or self.warmup < 0 or self.engine_steps < 0:
            raise ValueError("steps must be >= 1, warmup and engine steps >= 0")


def xsmall_config():
    """rinna/japanese-gpt2-xsmall's architecture."""
    from transformers import GPT2Config
    return GPT2Config(vocab_size=32000, n_positions=1024, n_embd=512, n_layer=6, n_head=8, n_inner=2304,
                      bos_token_id=1, eos_token_id=2, pad_token_id=3)


def xsmall_model():
    """The xsmall architecture, randomly initialised (seed 0)."""
    from transformers import GPT2LMHeadModel
    torch.manual_seed(0)
    return GPT2LMHeadModel(xsmall_config())


def corpus_blocks(tokenizer, block_size: int, count: int, heldout_count: int = 16):
    """`count` blocks of real Japanese token ids (the embedded tokenizer over assets/corpus), repeated
    if the corpus is shorter, plus held-out blocks from documents the blocks do not use."""
    from .data import build_dataset, read_documents
    data = build_dataset(read_documents([CORPUS]), tokenizer, block_size, heldout_fraction=0.1, seed=0)
    reps = -(-count // len(data.train_blocks))
    return data.train_blocks.repeat(reps, 1)[:count], data.heldout_blocks[:heldout_count]


def embedded_tokenizer():
    from .models import EMBEDDED_MODEL
    from .tokens import load_tokenizer
    return load_tokenizer(EMBEDDED_MODEL)[0]


def seed_recipe(blocks, tokenizer, device: str, steps: int, warmup: int):
    """The article's recipe on today's transformers: DataCollatorForLanguageModeling(mlm=False) over
    128-token blocks, Trainer with default TrainingArguments (batch 8, fp32, AdamW, lr 5e-5).
    Returns the model and the seconds of the steps after `warmup`."""
    from transformers import (DataCollatorForLanguageModeling, PrinterCallback, Trainer, TrainerCallback,
                              TrainingArguments)

    class Clock(TrainerCallback):
        start = end = None

        def on_step_end(self, args, state, control, **kw):
            if device == "cuda":
                torch.cuda.synchronize()
            if state.global_step == warmup:
                self.start = time.perf_counter()
            self.end = time.perf_counter()

    model = xsmall_model()
    clock = Clock()
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


def engine_run(blocks, heldout, tokenizer, device: str, **overrides) -> dict:
    """The engine's own training path (finetune.train.train) on these blocks; settings not given
    in `overrides` are the engine's defaults. Returns its metrics."""
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
                                 eval_steps=10**6, save_steps=10**6, **overrides)
        return train(settings, dataset=data)


def figure(name: str, **values):
    line = {"figure": name, **values}
    print(json.dumps(line, ensure_ascii=False), flush=True)
    return line


def large_run_settings(device: str, steps: int) -> dict:
    """What the engine picks for a corpus big enough to fill its largest step, for `steps` steps:
    batch and lr are its defaults for a fixed step count; compile as for a run of 20M+ tokens."""
    return {"max_steps": steps, "compile": "on" if should_compile("auto", device, COMPILE_MIN_TOKENS) else "off"}


def engine_figure(name: str, metrics: dict, peak, **extra):
    return figure(name, **extra, precision=metrics["precision"], block_size=metrics["block_size"],
                  batch_size=metrics["batch_size"], compiled=metrics["compiled"],
                  tokens_per_second=metrics["train_tokens_per_second"], mfu=metrics.get("mfu"),
                  heldout_loss=round(metrics["heldout_loss_after"], 4), tokens=metrics["tokens_seen"],
                  peak_memory_mb=peak())


def run(settings: BenchSettings) -> list[dict]:
    from .evaluate import heldout_loss
    from .speed import default_block_size
    device = resolve_device(settings.device)
    tokenizer = embedded_tokenizer()
    results = []

    # 1. The seed recipe, and the engine on exactly the same blocks (equal tokens, equal data).
    seed_blocks, seed_heldout = corpus_blocks(tokenizer, 128, 8 * (settings.steps + settings.warmup))
    peak = peak_memory_reset(device)
    seed_model, seed_seconds = seed_recipe(seed_blocks, tokenizer, device, settings.steps, settings.warmup)
    seed_tps = settings.steps * 8 * 128 / seed_seconds
    seed_loss = heldout_loss(seed_model.to(device), seed_heldout.to(device))
    del seed_model
    results.append(figure("seed_recipe", device=device, tokens_per_second=round(seed_tps, 1),
                          heldout_loss=round(seed_loss, 4), tokens=seed_blocks.numel(), peak_memory_mb=peak()))
    peak = peak_memory_reset(device)
    equal = engine_run(seed_blocks, seed_heldout, tokenizer, device, epochs=1)
    results.append(engine_figure("equal_tokens", equal, peak, device=device,
                                 heldout_loss_delta=round(equal["heldout_loss_after"] - seed_loss, 4)))

    # 2. The engine's large-corpus defaults: the speed a long run trains at. On a CPU they do not
    # depend on the corpus size, so the equal-token run is that run already.
    steps = settings.engine_steps or 40
    block = default_block_size(device, 1024)
    blocks, heldout = corpus_blocks(tokenizer, block, 64 * steps, heldout_count=max(1, 16 * 128 // block))
    if device == "cpu" and not settings.engine_steps:
        engine = equal
    else:
        peak = peak_memory_reset(device)
        engine = engine_run(blocks, heldout, tokenizer, device, **large_run_settings(device, steps))
    results.append(engine_figure("engine", engine, peak, device=device))
    results.append(figure("ratio", device=device, device_name=device_name(device),
                          engine_over_seed=round(engine["train_tokens_per_second"] / seed_tps, 2),
                          equal_tokens_over_seed=round(equal["train_tokens_per_second"] / seed_tps, 2),
                          heldout_loss_delta_at_equal_tokens=round(equal["heldout_loss_after"] - seed_loss, 4),
                          mfu=engine.get("mfu"), peak_flops=peak_flops(device_name(device)),
                          flops_per_token=flops_per_token(xsmall_config(), engine["block_size"]),
                          fast_precision=fast_precision(device)))
    if settings.levers:
        results += levers(device, tokenizer, steps, blocks, heldout, seed_blocks, seed_heldout)
    results.append(tokenizer_latency(tokenizer))
    results.append(generation_speed(device))
    if settings.startup:
        results.append(startup_seconds())
    if settings.plot:
        write_plot(settings.plot, results)
    return results


def lever_settings(device: str) -> list[tuple[str, str, dict]]:
    """(name, which blocks, engine overrides) of the alternatives worth timing on `device`."""
    if device == "cpu":
        # The precision the engine did not pick: fp32 where bf16 is fast (AMX), else none, since
        # bf16 without hardware support runs about 20x slower and would not finish in time.
        other = [("fp32 8x128", "seed", {"precision": "fp32", "epochs": 1})] if cpu_has_fast_bf16() else []
        return other + [("LoRA 8x128", "seed", {"method": "lora", "epochs": 1})]
    return [("bf16 8x128", "seed", {"batch_size": 8, "epochs": 1}),
            ("bf16 64x1024 eager", "large", {"compile": "off"}),
            ("bf16 32x1024 compiled", "large", {"batch_size": 32, "compile": "on"}),
            ("bf16 64x1024 compiled, dropout 0", "large", {"compile": "on", "dropout": 0.0}),
            ("LoRA 64x1024 compiled", "large", {"method": "lora", "compile": "on"})]


def levers(device, tokenizer, steps, blocks, heldout, seed_blocks, seed_heldout) -> list[dict]:
    out = []
    for name, which, overrides in lever_settings(device):
        peak = peak_memory_reset(device)
        if which == "seed":
            metrics = engine_run(seed_blocks, seed_heldout, tokenizer, device, **overrides)
        else:  # Trainer starts another pass over the blocks if a larger batch needs it
            metrics = engine_run(blocks, heldout, tokenizer, device, **({"max_steps": steps} | overrides))
        out.append(engine_figure("lever", metrics, peak, setting=name, device=device))
    return out


def device_name(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name(0)
    return f"CPU, {torch.get_num_threads()} threads"


def tokenizer_latency(tokenizer):
    from .tokens import token_view
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


def startup_seconds(timeout: float = 90.0):
    """Seconds from `python app.py` to its first served page, on a free loopback port."""
    if importlib.util.find_spec("gradio") is None:  # the GPU bench machine has no gradio
        return figure("startup", skipped="gradio is not installed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = os.environ | {"PORT": str(port), "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    started = time.perf_counter()
    app = subprocess.Popen([sys.executable, str(ROOT / "app.py")], cwd=ROOT, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while time.perf_counter() - started < timeout and app.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as page:
                    if page.status == 200:
                        return figure("startup", seconds_to_first_page=round(time.perf_counter() - started, 2))
            except OSError:
                time.sleep(0.1)
        return figure("startup", failed=f"no page within {timeout:.0f} s (exit code {app.poll()})")
    finally:
        app.terminate()
        app.wait(timeout=10)


def peak_memory_reset(device: str):
    """Start measuring peak memory; returns a function that reads it in MB (on CPU: the process's
    peak resident size so far, which only grows)."""
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        return lambda: round(torch.cuda.max_memory_allocated() / 2**20, 1)
    import resource
    return lambda: round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def plot_rows(results: list[dict]) -> list[tuple[str, float]]:
    """(label, tokens/s) for each training figure, in print order."""
    rows = []
    for r in results:
        if "tokens_per_second" not in r or r["figure"] == "generation":
            continue
        if r["figure"] == "seed_recipe":
            label = "seed recipe fp32 8x128"
        elif r["figure"] == "lever":
            label = r["setting"]
        else:
            shape = f"{r['batch_size']}x{r['block_size']}"
            which = "large corpus" if r["figure"] == "engine" else "seed's tokens"
            label = f"engine ({which}): {r['precision']} {shape}" + (" compiled" if r["compiled"] else "")
        rows.append((label, float(r["tokens_per_second"])))
    return rows


def write_plot(path: str, results: list[dict]):
    """A horizontal bar chart of training tokens/s by setting (log scale), as a standalone SVG."""
    import math
    from html import escape
    rows = plot_rows(results)
    top = max(v for _, v in rows)
    low = 10 ** math.floor(math.log10(min(v for _, v in rows)))
    width, left, bar_h = 760, 300, 22
    scale = (width - left - 90) / (math.log10(top) - math.log10(low) or 1)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{len(rows) * (bar_h + 8) + 50}" '
             'font-family="sans-serif" font-size="12">',
             f'<text x="10" y="18" font-size="14">training tokens/s by setting ({escape(device_label(results))}, '
             'log scale)</text>']
    for i, (label, value) in enumerate(rows):
        y = 34 + i * (bar_h + 8)
        length = max(2.0, (math.log10(value) - math.log10(low)) * scale)
        parts += [f'<text x="{left - 8}" y="{y + 15}" text-anchor="end">{escape(label)}</text>',
                  f'<rect x="{left}" y="{y}" width="{length:.1f}" height="{bar_h}" fill="#4c78a8"/>',
                  f'<text x="{left + length + 6:.1f}" y="{y + 15}">{value:,.0f}</text>']
    parts.append("</svg>")
    Path(path).write_text("\n".join(parts) + "\n", encoding="utf-8")


def device_label(results: list[dict]) -> str:
    for r in results:
        if r["figure"] == "ratio":
            return r["device_name"]
    return ""
