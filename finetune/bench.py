"""`python -m finetune bench`: the engine against the seed article's recipe, back to back.

Both train the same randomly initialised model with rinna/japanese-gpt2-xsmall's architecture (GPT-2,
6 layers, 512 wide, 8 heads, 32000 vocabulary, 37M parameters; speed does not depend on the weights)
on blocks of the project's own corpus, on the same machine, in the same process. Each figure is
printed as one JSON line. Ratios are what to compare across machines; absolute numbers are noisy.

Figures, in order:
  time_to_quality  the headline: wall seconds from a fresh process's start to a saved model as good as
                the seed recipe's (held-out loss at or below), for the seed recipe and for the engine
                with its defaults, end to end, on the seed article and on a 1M-character corpus
                (see the section of that name below: it fine-tunes the embedded model, not xsmall)
  seed_recipe   the article's recipe: fp32, 8 blocks of 128 tokens, Trainer defaults
  equal_tokens  the engine with its defaults for the seed run's data, trained on exactly the seed's
                tokens: held-out loss against the seed's (on a GPU, the small-data path)
  engine        the engine with its defaults for a large corpus on this device (on a GPU: 64 blocks
                of 1024 tokens, bf16, torch.compile, fused AdamW; on a CPU the seed's step shape,
                bf16 and compiled on AMX CPUs)
  ratio         engine tokens/s over the seed's, and model-FLOPs utilisation on a GPU
  lever         (--levers) one line per alternative setting, for the tokens/s-by-setting plot, with
                tokens/s over the seed's and held-out loss against it at equal tokens
  tokenizer_view_ms, generation (model.generate), streaming (finetune.generate.stream against
  model.generate), startup
"""
from __future__ import annotations

import contextlib
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
    lever_filter: str = field(default="", metadata={
        "help": "only the levers whose names contain one of these comma-separated words (default: all)"})
    plot: str = field(default="", metadata={"help": "write a tokens/s-by-setting bar chart (SVG) to this file"})
    startup: bool = field(default=True, metadata={"help": "time the studio's start (needs gradio)"})
    quality: bool = field(default=True, metadata={
        "help": "time_to_quality: seed recipe and engine end to end in fresh processes, on two data sizes"})
    corpus_characters: int = field(default=0, metadata={
        "help": "size of the large time_to_quality text; 0 = 1,000,000 (100,000 with quick)"})
    quick: bool = field(default=False, metadata={
        "help": "a short smoke run: 5 timed steps, 1 warm-up, a 100,000-character corpus, no studio start"})

    def __post_init__(self):
        if self.steps < 1 or self.warmup < 0 or self.engine_steps < 0:
            raise ValueError("steps must be >= 1, warmup and engine steps >= 0")
        if self.corpus_characters < 0 or 0 < self.corpus_characters < 10_000:
            raise ValueError("corpus characters must be 0 (default) or at least 10,000")
        if self.quick:
            self.steps, self.warmup, self.startup = min(self.steps, 5), min(self.warmup, 1), False

    @property
    def quality_characters(self) -> int:
        return self.corpus_characters or (QUICK_CORPUS_CHARACTERS if self.quick else CORPUS_CHARACTERS)


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
    if settings.quality:  # the headline figure first; its runs are separate processes
        results += time_to_quality(device, settings.quality_characters)

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

    # 2. The engine's large-corpus defaults: the speed a long run trains at. On a CPU the step shape
    # does not depend on the corpus size, so it is the equal-token run, compiled where a long run
    # would be (AMX CPUs: speed.CPU_COMPILE_MIN_TOKENS).
    steps = settings.engine_steps or (5 if settings.quick else 40)
    block = default_block_size(device, 1024)
    blocks, heldout = corpus_blocks(tokenizer, block, 64 * steps, heldout_count=max(1, 16 * 128 // block))
    if device == "cpu" and not settings.engine_steps:
        compiled = large_run_settings(device, steps)["compile"] == "on"
        peak = peak_memory_reset(device)
        engine = engine_run(seed_blocks, seed_heldout, tokenizer, device, epochs=1, compile="on") if compiled else equal
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
        results += levers(device, tokenizer, steps, blocks, heldout, seed_blocks, seed_heldout, seed_tps, seed_loss,
                          settings.lever_filter)
    results.append(tokenizer_latency(tokenizer))
    results.append(generation_speed(device))
    results.append(streaming_speed(device))
    if settings.startup:
        results.append(startup_seconds())
    results.append(first_step_seconds(device))
    if settings.plot:
        write_plot(settings.plot, results)
    return results


def lever_settings(device: str) -> list[tuple[str, str, dict]]:
    """(name, which blocks, overrides) of the alternatives worth timing on `device`. Overrides are
    engine settings, plus two the bench applies around the run: "threads" (torch's intra-op
    threads) and "loss" ("chunked" or "liger": the cross-entropy made without full logits)."""
    if device == "cpu":
        fast = cpu_has_fast_bf16()
        # bf16 runs only where it is fast (AMX): without hardware support it is about 20x slower
        # and would not finish in time. The rest are the engine's precision for this CPU.
        # Where the engine figure is compiled already (AMX), the lever is the eager run.
        precision = "bf16" if fast else "fp32"
        other = [("fp32 8x128", "seed", {"precision": "fp32", "epochs": 1}),
                 ("bf16 8x128 eager", "seed", {"compile": "off", "epochs": 1})] if fast else [
                 ("fp32 8x128 compiled", "seed", {"compile": "on", "epochs": 1})]
        return other + [
            (f"{precision} 16x128", "seed", {"batch_size": 16, "epochs": 1}),
            (f"{precision} 4x256", "seed256", {"batch_size": 4, "epochs": 1}),
            (f"{precision} 8x128, chunked loss", "seed", {"loss": "chunked", "epochs": 1}),
            (f"{precision} 8x128, 1 thread", "seed", {"threads": 1, "epochs": 1}),
            ("LoRA 8x128", "seed", {"method": "lora", "epochs": 1})]
    fused = [("bf16 64x1024 compiled, fused loss (liger)", "large", {"compile": "on", "loss": "liger"}),
             ("bf16 128x1024 compiled, fused loss (liger), dropout 0", "large",
              {"batch_size": 128, "compile": "on", "loss": "liger", "dropout": 0.0})]
    return [("bf16 8x128", "seed", {"batch_size": 8, "epochs": 1, "precision": "bf16"}),
            ("fp32/TF32 8x128", "seed", {"batch_size": 8, "epochs": 1, "precision": "fp32"}),
            ("bf16 64x1024 eager", "large", {"compile": "off"}),
            ("bf16 32x1024 compiled", "large", {"batch_size": 32, "compile": "on"}),
            ("bf16 64x1024 compiled, dropout 0", "large", {"compile": "on", "dropout": 0.0}),
            ("LoRA 64x1024 compiled", "large", {"method": "lora", "compile": "on"})
            ] + (fused if importlib.util.find_spec("liger_kernel") else [])


@contextlib.contextmanager
def lever_context(threads: int | None = None, loss: str | None = None):
    """Around one lever run: torch's intra-op threads set to `threads`, and GPT-2's training loss
    made by speed.fused_loss_forward(`loss`); both restored afterwards."""
    from transformers import GPT2LMHeadModel
    from .speed import fused_loss_forward
    before, original = torch.get_num_threads(), GPT2LMHeadModel.forward
    try:
        if threads:
            torch.set_num_threads(threads)
        if loss:
            GPT2LMHeadModel.forward = fused_loss_forward(original, loss)
        yield
    finally:
        torch.set_num_threads(before)
        GPT2LMHeadModel.forward = original


def levers(device, tokenizer, steps, blocks, heldout, seed_blocks, seed_heldout, seed_tps: float,
           seed_loss: float, lever_filter: str = "") -> list[dict]:
    """One `lever` figure per lever_settings entry, with its tokens/s over the seed's and its
    held-out loss against the seed's in percent (equal tokens for the seed-sized ones)."""
    from .errors import FinetuneError
    out = []
    for name, which, overrides in lever_settings(device):
        if lever_filter and not any(word.strip() in name for word in lever_filter.split(",") if word.strip()):
            continue
        context = {k: overrides.pop(k) for k in ("threads", "loss") if k in overrides}
        peak = peak_memory_reset(device)
        try:
            with lever_context(**context):
                if which == "seed":
                    metrics = engine_run(seed_blocks, seed_heldout, tokenizer, device, **overrides)
                elif which == "seed256":  # the seed's tokens as 256-token blocks, judged on the same held-out
                    metrics = engine_run(seed_blocks.reshape(-1, 256), seed_heldout, tokenizer, device, **overrides)
                else:  # Trainer starts another pass over the blocks if a larger batch needs it
                    metrics = engine_run(blocks, heldout, tokenizer, device, **({"max_steps": steps} | overrides))
        except (FinetuneError, RuntimeError, ImportError) as err:  # one lever must not end the bench
            out.append(figure("lever", setting=name, device=device, failed=f"{type(err).__name__}: {err}"[:300]))
            continue
        extra = {}
        if which != "large":
            extra = {"over_seed": round(metrics["train_tokens_per_second"] / seed_tps, 2),
                     "heldout_loss_vs_seed_pct": round(100 * (metrics["heldout_loss_after"] / seed_loss - 1), 2)}
        out.append(engine_figure("lever", metrics, peak, setting=name, device=device, **extra))
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


def cjk_tokenizer(vocab_size: int = 32000):
    """A tokenizer for the xsmall architecture's 32000 ids in which every id but the four special
    ones (0-3, as in rinna's) is one CJK character: streamed text is released token by token, as
    transformers' streamer does for kanji, so the first piece is the first token."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    points = [*range(0x4E00, 0xA000), *range(0x3400, 0x4DC0), *range(0x20000, 0x2A6E0)]
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, "<pad>": 3} | {chr(p): i + 4 for i, p in enumerate(points[:vocab_size - 4])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex("."), "isolated")
    backend.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>")


def streaming_speed(device: str, new_tokens: int = 64, repeats: int = 3):
    """finetune.generate.stream against plain model.generate on the xsmall architecture, greedy and
    without a repetition penalty on both sides (the same work): milliseconds to the first streamed
    piece and to the first token of model.generate, and tokens/s of each (medians of `repeats`)."""
    from .generate import GenerationSettings, prompt_tensor, stream
    model = xsmall_model().to(device).eval()
    tokenizer = cjk_tokenizer()
    prompt = "".join(tokenizer.convert_ids_to_tokens(list(range(100, 112))))  # 12 tokens, as `generation`
    settings = GenerationSettings(max_new_tokens=new_tokens, temperature=0.0, repetition_penalty=1.0)
    ids = prompt_tensor(model, tokenizer, prompt)
    plain = dict(attention_mask=torch.ones_like(ids), do_sample=False, pad_token_id=3, eos_token_id=2)

    def streamed():
        started, first, text = time.perf_counter(), None, ""
        for piece in stream(model, tokenizer, prompt, settings):
            if piece and first is None:
                first = time.perf_counter() - started
            text += piece
        return first, len(text) / (time.perf_counter() - started)  # one character per token

    def generated(count: int):
        started = time.perf_counter()
        with torch.no_grad():
            out = model.generate(ids, max_new_tokens=count, min_new_tokens=count, **plain)
        return time.perf_counter() - started, (out.shape[1] - ids.shape[1])

    streamed(), generated(2)  # warm-up
    runs = [streamed() for _ in range(repeats)]
    firsts = [generated(1)[0] for _ in range(repeats)]
    rates = [n / seconds for seconds, n in (generated(new_tokens) for _ in range(repeats))]
    stream_rate, plain_rate = statistics.median(r for _, r in runs), statistics.median(rates)
    return figure("streaming", device=device, shape="xsmall", new_tokens=new_tokens,
                  stream_first_piece_ms=round(statistics.median(f for f, _ in runs) * 1000, 1),
                  generate_first_token_ms=round(statistics.median(firsts) * 1000, 1),
                  stream_tokens_per_second=round(stream_rate, 1), generate_tokens_per_second=round(plain_rate, 1),
                  stream_over_generate=round(stream_rate / plain_rate, 2))


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


def seconds_to_first_step(warm: bool, device: str, folder: Path) -> float:
    """Seconds from a front end's start of a short run of the embedded model (TrainingJob, as the
    studio starts it) to the first training step in its log. `warm`: the run's process was made
    ahead and has finished its imports, as the studio keeps it."""
    from .runner import TrainingJob, read_events
    from .train import PROGRESS_FILE, TrainSettings
    job = TrainingJob(folder / ("warm" if warm else "cold"), warm=warm)
    try:
        if warm:
            while job.workers.ready is None:
                time.sleep(0.05)
            job.workers.ready.wait_ready(120)
        settings = TrainSettings(model=str(QUALITY_BASE), data=[str(ROOT / "tests" / "data" / "unseen-ja.txt")],
                                 max_steps=3, block_size=64, device=device)
        started = time.perf_counter()
        log = Path(job.start(settings).out) / PROGRESS_FILE
        while not any(e["event"] == "step" for e in read_events(log)):
            if not job.busy():
                raise RuntimeError(f"the run ended before its first step: {job.status().error}")
            time.sleep(0.02)
        seconds = time.perf_counter() - started
        job.wait(120)
        return seconds
    finally:
        job.workers.close()


def first_step_seconds(device: str) -> dict:
    """The studio's wait from the click to the first step, with a fresh process (as before) and
    with the warm one it keeps (issue #14's goal: within 5 s on 2 CPU cores)."""
    with tempfile.TemporaryDirectory(prefix="bench-first-step-") as tmp:
        cold = seconds_to_first_step(False, device, Path(tmp))
        warm = seconds_to_first_step(True, device, Path(tmp))
    return figure("first_step", device=device, model="embedded", cold_seconds=round(cold, 2),
                  warm_seconds=round(warm, 2))


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


# ----------------------------------------------------------------------------------------------
# Time to quality: wall seconds from a fresh process's start to a saved model whose held-out loss
# is at or below the seed recipe's own final held-out loss on the same text.
#
# The base model is the embedded assets/tiny-japanese-gpt2 (GPT-2, 4 layers, 256 wide, 6000-token
# vocabulary), not the random xsmall architecture of the tokens/s figures: "quality" needs a model
# that already knows Japanese (fine-tuning a random model measures how fast a loss falls from
# ln(32000), not fine-tuning), the real rinna weights are on the Hub and this bench runs offline,
# and the tiny model is small enough that the seed recipe's three epochs over a 1M-character
# corpus take minutes, not an hour, on 2 CPU cores. It was pretrained on assets/corpus, so the
# 1M-character figure measures adapting to new arrangements of known sentences; the article (or the
# blog samples standing in for it) is text it has never seen.

QUALITY_BASE = ROOT / "assets" / "tiny-japanese-gpt2"
SEED_SCRIPT = ROOT / "scripts" / "seed_recipe.py"
ARTICLE = Path("seed") / "article-ja.txt"
FALLBACK_TEXTS = ROOT / "assets" / "samples" / "blog"
FALLBACK_CHARACTERS = 5_000    # about the article's size (5,081 characters)
CORPUS_CHARACTERS = 1_000_000  # the large data size
QUICK_CORPUS_CHARACTERS = 100_000
HELDOUT_SHARE = 0.1            # of the text, held out from both runs and used to judge them
CORPUS_FILE_CHARACTERS = (4_000, 20_000)  # a blog post to a short chapter per generated file
JUDGE_BLOCK = 128              # held-out blocks of the seed recipe's size, whatever each run trained on


@dataclass
class QualityText:
    """One data size of time_to_quality: the training text as one file (the seed recipe reads one
    file, as the article does) and as a folder of documents (what a user gives the engine), and the
    held-out documents both saved models are judged on."""
    name: str
    source: str
    train_file: Path
    train_dir: Path
    heldout: list[str]
    characters: int


def article_path() -> Path | None:
    """The seed article's text: $SEED_ARTICLE, else shared/seed/article-ja.txt in the checkout or in a
    folder above it (CI copies shared/ beside the clone). None when there is none."""
    given = os.environ.get("SEED_ARTICLE")
    if given:
        return Path(given) if Path(given).is_file() else None
    for folder in (ROOT, *ROOT.parents):
        if (folder / "shared" / ARTICLE).is_file():
            return folder / "shared" / ARTICLE
    return None


def fallback_text() -> str:
    """Project-made text of about the article's size: the blog samples in name order, until
    FALLBACK_CHARACTERS (text the embedded model has not been trained on, like the article)."""
    parts, size = [], 0
    for path in sorted(FALLBACK_TEXTS.glob("*.txt")):
        parts.append(path.read_text(encoding="utf-8").strip())
        size += len(parts[-1])
        if size >= FALLBACK_CHARACTERS:
            break
    return "\n\n".join(parts) + "\n"


def tail_lines(text: str, share: float) -> tuple[str, str]:
    """(head, tail) of `text` cut at a line start, the tail being the fewest last lines that hold
    `share` of its characters (at least one line)."""
    lines = text.splitlines(keepends=True)
    held = 0
    for cut in range(len(lines) - 1, 0, -1):
        held += len(lines[cut])
        if held >= share * len(text):
            return "".join(lines[:cut]), "".join(lines[cut:])
    return "".join(lines[:-1]), lines[-1] if lines else ""


def corpus_sentences() -> list[str]:
    """The sentences of assets/corpus (split after 。！？), in file order."""
    import re
    sentences = []
    for path in sorted(CORPUS.glob("*.txt")):
        for line in path.read_text(encoding="utf-8").splitlines():
            sentences += [s for s in re.findall(r"[^。！？]*[。！？]|[^。！？]+$", line.strip()) if s.strip()]
    return sentences


def corpus_documents(characters: int, seed: int = 0) -> list[str]:
    """About `characters` characters of Japanese made from the project's corpus, as documents of
    CORPUS_FILE_CHARACTERS: its sentences drawn with a fixed seed into paragraphs of 3-8 sentences
    (the recipe of scripts/bench_prepare.py, counted in characters). Same arguments, same text."""
    import random
    rng = random.Random(seed)
    sentences = corpus_sentences()
    documents, total = [], 0
    while total < characters:
        size = min(rng.randint(*CORPUS_FILE_CHARACTERS), max(characters - total, 1))
        paragraphs, written = [], 0
        while written < size:
            paragraphs.append("".join(rng.choice(sentences) for _ in range(rng.randint(3, 8))))
            written += len(paragraphs[-1]) + 2
        documents.append("\n\n".join(paragraphs) + "\n")
        total += len(documents[-1])
    return documents


def heldout_every(documents: list[str], share: float) -> tuple[list[str], list[str]]:
    """(training, held-out) documents: the last of every round(1/share) documents is held out (the
    last document when there are fewer; one at least always trains)."""
    if len(documents) < 2:
        raise ValueError("holding out whole documents needs at least two")
    step = max(2, round(1 / share))
    held = {i for i in range(len(documents)) if i % step == step - 1} or {len(documents) - 1}
    return ([d for i, d in enumerate(documents) if i not in held],
            [d for i, d in enumerate(documents) if i in held])


def write_quality_text(folder: Path, name: str, source: str, train: list[str], heldout: list[str]) -> QualityText:
    """The training documents as files of a folder and joined into one file, beside each other."""
    train_dir = folder / name / "train"
    train_dir.mkdir(parents=True)
    for i, text in enumerate(train):
        (train_dir / f"{name}-{i:04d}.txt").write_text(text, encoding="utf-8")
    train_file = folder / name / "testdata.txt"  # the article's file name
    train_file.write_text("\n\n".join(t.strip("\n") for t in train) + "\n", encoding="utf-8")
    return QualityText(name, source, train_file, train_dir, heldout,
                       characters=sum(map(len, train)) + sum(map(len, heldout)))


def quality_texts(folder: Path, corpus_characters: int) -> list[QualityText]:
    """The two data sizes: the seed article (or the project's stand-in when it is not here; `source`
    says which) with its last lines held out, and the generated corpus with every tenth document held out."""
    path = article_path()
    if path is not None:
        text, source = path.read_text(encoding="utf-8"), f"seed article ({path.name})"
    else:
        text = fallback_text()
        source = (f"seed article not found (shared/{ARTICLE}, or set SEED_ARTICLE): stand-in of "
                  f"{len(text)} characters from assets/samples/blog")
    head, tail = tail_lines(text, HELDOUT_SHARE)
    train, heldout = heldout_every(corpus_documents(corpus_characters), HELDOUT_SHARE)
    return [write_quality_text(folder, "article", source, [head], [tail]),
            write_quality_text(folder, "corpus", f"{corpus_characters:,} characters from assets/corpus sentences",
                               train, heldout)]


def judge_blocks(tokenizer, heldout: list[str]) -> torch.Tensor:
    """The held-out text as the engine packs it (each document's ids, then EOS) in JUDGE_BLOCK blocks."""
    from .data import Document, build_dataset
    docs = [Document(f"heldout-{i}", text) for i, text in enumerate(heldout)]
    return build_dataset(docs, tokenizer, JUDGE_BLOCK, heldout_fraction=0.0).train_blocks


def judged_loss(model_dir: Path, blocks: torch.Tensor, device: str) -> float:
    """Held-out loss of a saved model (fp32, the same measure for every run)."""
    from transformers import AutoModelForCausalLM
    from .evaluate import heldout_loss
    model = AutoModelForCausalLM.from_pretrained(str(model_dir)).to(device)
    return heldout_loss(model, blocks.to(device))


def child_process(command: list[str], log: Path) -> tuple[float, float, str]:
    """Run `command` in a fresh Python process from the checkout; (wall time it was started, wall time
    it ended, its stdout). Its stderr goes to `log`; a failure raises with the log's end."""
    from .errors import FinetuneError
    env = os.environ | {"HF_HUB_OFFLINE": "1"}
    with open(log, "w", encoding="utf-8") as err:
        started = time.time()
        done = subprocess.run(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=err, text=True)
        ended = time.time()
    if done.returncode:
        tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise FinetuneError(f"{' '.join(map(str, command[:4]))} … failed (exit code {done.returncode}):\n{tail}")
    return started, ended, done.stdout


def stage_seconds(started: float, marks: list[tuple[str, float]]) -> dict[str, float]:
    """Seconds of each stage: from the previous mark (the first from `started`) to the named one."""
    stages, last = {}, started
    for name, at in marks:
        stages[name] = round(at - last, 2)
        last = at
    return stages


def seed_child(text: QualityText, out: Path, device: str) -> dict:
    """The seed recipe (scripts/seed_recipe.py) end to end in its own process."""
    started, ended, stdout = child_process(
        [sys.executable, str(SEED_SCRIPT), "--model", str(QUALITY_BASE), "--data", str(text.train_file),
         "--out", str(out), "--device", device], out.parent / f"{out.name}.log")
    report = json.loads(stdout.strip().splitlines()[-1])
    marks = report["marks"]
    stages = stage_seconds(started, [(k, marks[k]) for k in ("imported", "loaded", "tokenized", "trained", "saved")])
    return {"seconds": round(marks["saved"] - started, 2), "process_seconds": round(ended - started, 2),
            "stages": stages, "steps": report["steps"], "tokens_seen": report["tokens_seen"]}


def engine_child(text: QualityText, out: Path, device: str) -> dict:
    """`python -m finetune train` with the engine's defaults, end to end in its own process."""
    from .train import PROGRESS_FILE
    started, ended, stdout = child_process(
        [sys.executable, "-m", "finetune", "train", "--model", str(QUALITY_BASE), "--data", str(text.train_dir),
         "--out", str(out), "--device", device, "--json"], out.parent / f"{out.name}.log")
    metrics = json.loads(stdout.strip().splitlines()[-1])
    events = [json.loads(line) for line in (out / PROGRESS_FILE).read_text(encoding="utf-8").splitlines()]
    return engine_report(started, ended, metrics, events)


def engine_report(started: float, ended: float, metrics: dict, events: list[dict]) -> dict:
    """The engine child's seconds to its saved model and its stages, from its progress events:
    `start` comes after imports, loading and tokenizing; the step-0 `eval` after the held-out loss
    before training; `done` after training (with its evaluations), the last evaluation and saving."""
    first = {}
    for e in events:
        first.setdefault(e["event"], e)
    marks = [("ready", first["start"]["time"])]
    if "eval" in first and first["eval"].get("step") == 0:
        marks.append(("evaluated", first["eval"]["time"]))
    marks.append(("trained_and_saved", first["done"]["time"]))
    return {"seconds": round(first["done"]["time"] - started, 2), "process_seconds": round(ended - started, 2),
            "stages": stage_seconds(started, marks), "steps": metrics["steps"], "tokens_seen": metrics["tokens_seen"],
            "settings": {k: metrics.get(k) for k in ("precision", "batch_size", "block_size", "learning_rate",
                                                     "compiled", "train_tokens_per_second")},
            "own_heldout_loss": round(metrics["heldout_loss_after"], 4)}


def quality_values(seed: dict, engine: dict, seed_loss: float, engine_loss: float) -> dict:
    """The time_to_quality numbers: the engine's time counts only when its saved model is at least as
    good as the seed's (held-out loss at or below); otherwise it is None and `reached` says so."""
    reached = engine_loss <= seed_loss
    return {"seed_seconds": seed["seconds"], "engine_seconds": engine["seconds"] if reached else None,
            "speedup": round(seed["seconds"] / engine["seconds"], 2) if reached else None, "reached": reached,
            "seed_heldout_loss": round(seed_loss, 4), "engine_heldout_loss": round(engine_loss, 4),
            "engine_run_seconds": engine["seconds"]}


def time_to_quality(device: str, corpus_characters: int) -> list[dict]:
    """One time_to_quality figure per data size: the seed recipe, then the engine, each in a fresh
    process; both saved models judged on the same held-out blocks by this process."""
    from .tokens import load_tokenizer
    tokenizer = load_tokenizer(str(QUALITY_BASE))[0]
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-quality-") as tmp:
        for text in quality_texts(Path(tmp), corpus_characters):
            blocks = judge_blocks(tokenizer, text.heldout)
            seed = seed_child(text, Path(tmp) / text.name / "seed", device)
            seed_loss = judged_loss(Path(tmp) / text.name / "seed", blocks, device)
            engine = engine_child(text, Path(tmp) / text.name / "engine", device)
            engine_loss = judged_loss(Path(tmp) / text.name / "engine", blocks, device)
            results.append(figure(
                "time_to_quality", data=text.name, text=text.source, characters=text.characters,
                heldout_tokens=blocks.numel(), device=device, device_name=device_name(device),
                base_model="assets/tiny-japanese-gpt2", **quality_values(seed, engine, seed_loss, engine_loss),
                seed=seed, engine=engine))
    return results
