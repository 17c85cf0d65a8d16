"""`python -m finetune <command>`: the same engine the studio uses, from a terminal.

Every command takes --json for machine-readable output. User errors (bad flags, missing or unusable
files, unreachable models) print one line and exit with code 2; they never print a traceback.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from .errors import FinetuneError

EXIT_USAGE = 2


class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(f"{self.prog}: {message} (see --help)")


class UsageError(Exception):
    pass


def emit(args, data: dict, text: str):
    print(json.dumps(data, ensure_ascii=False) if args.json else text)


def cmd_tokenize(args):
    from .models import load_tokenizer_for, resolve_source
    from .tokens import token_view
    tokenizer, parity = load_tokenizer_for(resolve_source(args.model))
    view = token_view(tokenizer, args.text)
    data = {"tokens": view.tokens, "ids": view.ids, "count": view.count, "characters": view.characters,
            "chars_per_token": view.chars_per_token, "parity": parity.status}
    emit(args, data, f"tokens: {view.tokens}\nids:    {view.ids}\n"
                     f"{view.count} tokens, {view.characters} characters, {view.chars_per_token} characters/token"
                     f" (sentencepiece parity: {parity.status})")


def train_settings(args):
    from .lora import LoraSettings
    from .train import TrainSettings
    lora = LoraSettings(r=args.lora_r, alpha=args.lora_alpha, dropout=args.lora_dropout,
                        targets=args.lora_targets.split(",") if args.lora_targets else None)
    return TrainSettings(data=args.data, out=args.out, model=getattr(args, "model", None) or TrainSettings.model,
                         reading=read_options(args),
                         method=getattr(args, "method", "full"), epochs=args.epochs, max_steps=args.max_steps,
                         block_size=args.block_size, batch_size=args.batch_size,
                         micro_batch_size=args.micro_batch_size, grad_accum=args.grad_accum,
                         gradient_checkpointing=args.gradient_checkpointing, fused_loss=args.fused_loss, lr=args.lr,
                         heldout=args.heldout, seed=args.seed, device=args.device, precision=args.precision,
                         eval_steps=args.eval_steps, save_steps=args.save_steps, warmup_steps=args.warmup_steps,
                         dropout=getattr(args, "dropout", None), compile=getattr(args, "compile", "auto"),
                         lora=lora)


def print_event(record: dict):
    """Human-readable progress on stderr (stdout stays for the result)."""
    kind = record["event"]
    if kind == "step":
        print(f"step {record['step']}/{record['max_steps']}  loss {record['loss']:.4f}  "
              f"{record['tokens_per_second']:.0f} tok/s  ETA {record['eta_seconds']:.0f}s", file=sys.stderr)
    elif kind == "eval":
        print(f"step {record['step']}  held-out loss {record['heldout_loss']:.4f}  "
              f"perplexity {record['heldout_perplexity']:.2f}", file=sys.stderr)
    elif kind == "start":
        print(f"training {record['model']} ({record['method']}) on {record['device']}/{record['precision']}: "
              f"{record['train_tokens']} training tokens, {record['heldout_tokens']} held out, "
              f"{record['max_steps']} steps", file=sys.stderr)
        print(memory_line(record), file=sys.stderr)
    elif kind == "memory":
        print(f"memory: {record['message']}", file=sys.stderr)


def memory_line(record: dict) -> str:
    """How a step is split and what it should need: micro-batch, accumulation, checkpointing, trainable weights."""
    share = record["trainable_parameters"] / max(1, record["total_parameters"])
    estimate = record.get("estimated_memory_mb")
    budget = record.get("memory_budget_mb")
    memory = f", about {estimate:.0f} MB of {budget:.0f} MB usable" if estimate and budget else ""
    return (f"{record['batch_size']} blocks of {record['block_size']} tokens per step = micro-batch "
            f"{record['micro_batch_size']} x {record['grad_accum_steps']} accumulation, gradient checkpointing "
            f"{'on' if record['gradient_checkpointing'] else 'off'}, fused loss {'on' if record['fused_loss'] else 'off'}"
            f"{memory}; trainable parameters {record['trainable_parameters']:,} of {record['total_parameters']:,} "
            f"({100 * share:.2f}%)")


def tokenizing_bar():
    """A progress bar on stderr while large inputs are tokenized (under torchrun: rank 0's only)."""
    from .progress import ProgressBar
    from .train import is_main_process
    return ProgressBar("tokenizing", enabled=is_main_process())


def report_metrics(args, metrics: dict):
    from .train import is_main_process
    if not is_main_process():
        return  # under torchrun, rank 0 reports for everyone
    emit(args, metrics,
         f"held-out perplexity: {metrics['heldout_perplexity_before']:.2f} -> "
         f"{metrics['heldout_perplexity_after']:.2f}  (loss {metrics['heldout_loss_before']:.4f} -> "
         f"{metrics['heldout_loss_after']:.4f})\n{metrics['steps']} steps, {metrics['seconds']} s, "
         f"{metrics['train_tokens_per_second']} training tokens/s\nsaved to {args.out}")


def cmd_train(args):
    from .train import settings_from_run, train
    if args.resume:
        settings = settings_from_run(args.resume)
        args.out = settings.out
    elif not (args.data and args.out):
        raise UsageError("python -m finetune train: --data and --out are required (or --resume DIR)")
    else:
        settings = train_settings(args)
    with tokenizing_bar() as bar:
        metrics = train(settings, on_event=None if args.json else print_event, progress=bar)
    report_metrics(args, metrics)


def cmd_scratch(args):
    from .scratch import ModelShape, scratch
    shape = ModelShape(vocab_size=args.vocab_size, layers=args.layers, width=args.width, heads=args.heads,
                       context=args.context)
    with tokenizing_bar() as bar:
        metrics = scratch(train_settings(args), shape, on_event=None if args.json else print_event, progress=bar)
    report_metrics(args, metrics)


def cmd_generate(args):
    from .generate import GenerationSettings, generate, stream
    from .models import load_model, load_tokenizer_for, resolve_source
    from .devices import resolve_device
    settings = GenerationSettings(max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                                  top_p=args.top_p, top_k=args.top_k,
                                  repetition_penalty=args.repetition_penalty, seed=args.seed)
    source = resolve_source(args.model)
    tokenizer, _ = load_tokenizer_for(source)
    model = load_model(source, resolve_device(args.device))
    if args.json:
        text = generate(model, tokenizer, args.prompt, settings)
        print(json.dumps({"prompt": args.prompt, "text": text, **dataclasses.asdict(settings)}, ensure_ascii=False))
        return
    print(args.prompt, end="", flush=True)
    for piece in stream(model, tokenizer, args.prompt, settings):
        print(piece, end="", flush=True)
    print()


def cmd_eval(args):
    from .data import build_dataset, read_documents
    from .devices import resolve_device
    from .evaluate import heldout_loss, perplexity
    from .models import load_model, load_tokenizer_for, resolve_source
    source = resolve_source(args.model)
    tokenizer, _ = load_tokenizer_for(source)
    model = load_model(source, resolve_device(args.device))
    block_size = min(args.block_size, model.config.max_position_embeddings)
    with tokenizing_bar() as bar:
        data = build_dataset(read_documents(args.data), tokenizer, block_size, heldout_fraction=0, progress=bar)
    loss = heldout_loss(model, data.train_blocks, args.batch_size)
    emit(args, {"model": args.model, "loss": loss, "perplexity": perplexity(loss), "tokens": data.train_tokens},
         f"loss {loss:.4f}  perplexity {perplexity(loss):.2f}  over {data.train_tokens} tokens")


def encodings(args) -> tuple[str, dict[str, str]]:
    """(the encoding of all files, per-file encodings) from the repeatable --encoding ENC|FILE=ENC."""
    overrides = dict(item.rsplit("=", 1) for item in args.encoding if "=" in item)
    global_encoding = [item for item in args.encoding if "=" not in item]
    return (global_encoding[-1] if global_encoding else "auto"), overrides


def read_options(args):
    """The data flags (add_reading_flags) as finetune.formats.ReadOptions."""
    from .formats import ReadOptions
    encoding, overrides = encodings(args)
    return ReadOptions(nfkc=not args.no_nfkc, keep_code=args.keep_code, include_drafts=args.include_drafts,
                       include_comments=args.include_comments, authors=tuple(args.author), titles=args.titles,
                       encoding=encoding, encodings=overrides, max_file_mb=args.max_file_mb,
                       max_zip_mb=args.max_zip_mb)


def prepare_settings(args):
    from .prepare import PrepareSettings
    reading = read_options(args)
    return PrepareSettings(data=args.data, texts=args.text, model=args.model, block_size=args.block_size,
                           heldout=args.heldout, seed=args.seed, nfkc=reading.nfkc, keep_code=reading.keep_code,
                           include_drafts=reading.include_drafts, include_comments=reading.include_comments,
                           authors=list(reading.authors), titles=reading.titles, encoding=reading.encoding,
                           encodings=reading.encodings, max_file_mb=reading.max_file_mb,
                           max_zip_mb=reading.max_zip_mb, preview=args.preview, dump=args.dump)


def cmd_prepare(args):
    from .errors import DataError
    from .prepare import prepare
    with tokenizing_bar() as bar:
        report = prepare(prepare_settings(args), progress=bar)
    emit(args, report.to_dict(), report.to_text())
    if not report.usable:
        raise DataError(report.error)  # exit code 2 only when nothing at all can be trained on


def cmd_bench(args):
    from .bench import BenchSettings, run
    run(BenchSettings(device=args.device, steps=args.steps, warmup=args.warmup, engine_steps=args.engine_steps,
                      levers=args.levers, lever_filter=args.lever_filter, plot=args.plot, startup=not args.no_startup,
                      quality=not args.no_quality, corpus_characters=args.corpus_characters, quick=args.quick))


def cmd_push(args):
    import os
    from .share import NotLoggedIn, PushSettings, push
    # The token only ever comes from the environment: a command-line flag would land in shell history.
    token = os.environ.get(args.token_env, "").strip() or None
    if token is None and args.token_env != "HF_TOKEN":
        raise NotLoggedIn(f"environment variable {args.token_env} is not set (it should hold your access token)",
                          f"環境変数 {args.token_env} が設定されていません（アクセストークンを入れてください）")
    settings = PushSettings(model_dir=args.model, repo=args.repo, what=args.what, private=args.private,
                            base_model=args.base_model, license=args.license, endpoint=args.endpoint)
    url = push(settings, token=token)
    emit(args, {"url": url, "repo": args.repo, "what": args.what}, f"pushed to {url}")


def cmd_export(args):
    from .share import export_zip
    path = export_zip(args.model, args.out, merge=args.merge)
    emit(args, {"zip": str(path), "bytes": path.stat().st_size}, f"exported to {path}")


def add_reading_flags(p):
    """How the data is read: the same flags for prepare, train and scratch."""
    from .formats import ReadOptions as R
    from .prepare import setting_help
    p.add_argument("--encoding", action="append", default=[], metavar="ENC|FILE=ENC",
                   help="encoding of all files (ENC) or of one file (FILE=ENC) instead of detection; repeatable")
    p.add_argument("--no-nfkc", action="store_true", help="keep characters as they are (no Unicode NFKC)")
    p.add_argument("--keep-code", action="store_true", help=setting_help("keep_code"))
    p.add_argument("--include-drafts", action="store_true", help=setting_help("include_drafts"))
    p.add_argument("--include-comments", action="store_true", help=setting_help("include_comments"))
    p.add_argument("--author", action="append", default=[], metavar="NAME",
                   help=setting_help("authors") + "; repeatable")
    p.add_argument("--titles", action="store_true", help=setting_help("titles"))
    p.add_argument("--max-file-mb", type=float, default=R.max_file_mb, help=setting_help("max_file_mb"))
    p.add_argument("--max-zip-mb", type=float, default=R.max_zip_mb, help=setting_help("max_zip_mb"))


def add_training_flags(p, required=True):
    from .lora import LoraSettings
    from .prepare import setting_help
    from .train import TrainSettings as T
    p.add_argument("--data", nargs="+", required=required, help=setting_help("data"))
    add_reading_flags(p)
    p.add_argument("--out", required=required, help="output folder")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--epochs", type=float, default=T.epochs,
                       help="passes over the data (default 0 = auto: 3, or 2 for texts of 200k+ training tokens)")
    group.add_argument("--max-steps", type=int, default=-1, help="optimizer steps (overrides --epochs)")
    p.add_argument("--block-size", type=int, default=T.block_size,
                   help="tokens per block (default 0 = auto: 128 on CPU, up to 1024 on GPU)")
    p.add_argument("--batch-size", type=int, default=T.batch_size,
                   help="blocks per optimizer step (default 0 = auto: 8 on CPU; on GPU up to 64x1024 tokens, fewer "
                        "for models over 800M parameters)")
    p.add_argument("--micro-batch-size", type=int, default=T.micro_batch_size,
                   help="blocks per forward pass (default 0 = auto: the most that fit in free memory; halved and "
                        "retried if the first steps run out of memory)")
    p.add_argument("--grad-accum", type=int, default=T.grad_accum,
                   help="micro-batches per optimizer step (default 0 = auto: batch size / micro-batch size)")
    p.add_argument("--gradient-checkpointing", default=T.gradient_checkpointing, choices=["auto", "on", "off"],
                   help="recompute activations to save memory (auto: only when one block does not fit otherwise)")
    p.add_argument("--fused-loss", default=T.fused_loss, choices=["auto", "on", "off"],
                   help="output layer and loss fused in chunks with liger-kernel (auto: on a CUDA GPU where it is "
                        "installed; off on CPU)")
    p.add_argument("--lr", type=float, default=None,
                   help="learning rate (default 5e-5 full, 2e-4 LoRA, times sqrt(tokens per step / 1024))")
    p.add_argument("--heldout", type=float, default=T.heldout, help="held-out share (default %(default)s)")
    p.add_argument("--seed", type=int, default=T.seed, help="random seed (default %(default)s)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                   help="auto: bf16 on GPUs and on CPUs with AMX/AVX512-BF16, else fp32")
    p.add_argument("--eval-steps", type=int, default=0, help="held-out evaluation interval (0 = ~10 per run)")
    p.add_argument("--save-steps", type=int, default=T.save_steps, help="checkpoint interval (default %(default)s)")
    p.add_argument("--warmup-steps", type=int, default=0, help="learning-rate warm-up steps")
    p.add_argument("--dropout", type=float, default=None,
                   help="dropout of the model's layers while training (default: the model's own, 0.1 for GPT-2)")
    p.add_argument("--compile", default=T.compile, choices=["auto", "on", "off"],
                   help="torch.compile (auto: on a GPU for runs of 20M+ tokens)")
    defaults = LoraSettings()
    p.add_argument("--lora-r", type=int, default=defaults.r, help="LoRA rank (default %(default)s)")
    p.add_argument("--lora-alpha", type=int, default=defaults.alpha, help="LoRA alpha (default %(default)s)")
    p.add_argument("--lora-dropout", type=float, default=defaults.dropout, help="LoRA dropout (default %(default)s)")
    p.add_argument("--lora-targets", default="",
                   help="comma-separated module names to adapt, e.g. c_attn or q_proj,v_proj (default: every linear "
                        "layer except the output layer)")


def build_parser() -> Parser:
    from .models import DEFAULT_BASE
    parser = Parser(prog="python -m finetune", description="Fine-tune small Japanese language models on your own text.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    def command(name, func, help):
        p = sub.add_parser(name, help=help, description=help)
        p.add_argument("--json", action="store_true", help="print machine-readable JSON")
        p.set_defaults(func=func)
        return p

    p = command("tokenize", cmd_tokenize, "show the tokens and ids of a text")
    p.add_argument("--model", default=DEFAULT_BASE, help="Hub id or folder (default %(default)s)")
    p.add_argument("text", help="the text to tokenize")

    p = command("train", cmd_train, "fine-tune a model on text files (full, LoRA or QLoRA)")
    p.add_argument("--model", default=DEFAULT_BASE, help="base model: Hub id or folder (default %(default)s)")
    p.add_argument("--method", default="full", choices=["full", "lora", "qlora"],
                   help="full: every weight; lora: a small adapter; qlora: an adapter on a 4-bit base "
                        "(CUDA and bitsandbytes: pip install -r scripts/requirements-gpu.txt)")
    p.add_argument("--resume", metavar="DIR", help="continue an interrupted run from its last checkpoint")
    add_training_flags(p, required=False)

    p = command("scratch", cmd_scratch, "train a new tokenizer and a new small GPT-2 on text files")
    add_training_flags(p)
    p.set_defaults(epochs=3.0)  # a new model needs its passes: auto epochs are for fine-tuning
    from .scratch import ModelShape as S
    p.add_argument("--vocab-size", type=int, default=S.vocab_size, help="tokenizer vocabulary (default %(default)s)")
    p.add_argument("--layers", type=int, default=S.layers, help="transformer blocks (default %(default)s)")
    p.add_argument("--width", type=int, default=S.width, help="hidden size (default %(default)s)")
    p.add_argument("--heads", type=int, default=S.heads, help="attention heads (default %(default)s)")
    p.add_argument("--context", type=int, default=S.context, help="max sequence length (default %(default)s)")

    p = command("generate", cmd_generate, "continue a prompt with a model or a training output folder")
    p.add_argument("--model", required=True, help="Hub id, folder, or LoRA output folder")
    p.add_argument("--prompt", required=True, help="the text to continue")
    p.add_argument("--max-new-tokens", type=int, default=80)
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--top-k", type=int, default=50)
    p.add_argument("--repetition-penalty", type=float, default=1.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])

    p = command("eval", cmd_eval, "loss and perplexity of a model on text files")
    p.add_argument("--model", required=True, help="Hub id, folder, or LoRA output folder")
    p.add_argument("--data", nargs="+", required=True, help="text files or folders")
    p.add_argument("--block-size", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])

    from .prepare import PrepareSettings as P, setting_help
    p = command("prepare", cmd_prepare, "read and clean text files and report what training would use")
    p.add_argument("--data", nargs="*", default=[], help=setting_help("data"))
    p.add_argument("--text", action="append", default=[], help="pasted text (repeat for several)")
    p.add_argument("--model", default=DEFAULT_BASE, help="tokenizer for the token counts (default %(default)s)")
    p.add_argument("--block-size", type=int, default=P.block_size, help="tokens per block (default %(default)s)")
    p.add_argument("--heldout", type=float, default=P.heldout, help="held-out share (default %(default)s)")
    p.add_argument("--seed", type=int, default=P.seed, help=setting_help("seed"))
    add_reading_flags(p)
    p.add_argument("--preview", type=int, default=P.preview, help=setting_help("preview"))
    p.add_argument("--dump", default="", metavar="FILE.jsonl", help=setting_help("dump"))

    p = command("bench", cmd_bench, "measure the engine against the seed recipe (one JSON line per figure)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--steps", type=int, default=30, help="timed steps per recipe (default %(default)s)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (default %(default)s)")
    p.add_argument("--engine-steps", type=int, default=0,
                   help="steps of the engine's large-corpus run (default: 40; on CPU the equal-token run serves)")
    p.add_argument("--levers", action="store_true", help="also time alternative settings (one 'lever' line each)")
    p.add_argument("--lever-filter", default="",
                   help="with --levers: only those whose names contain one of these comma-separated words")
    p.add_argument("--plot", default="", help="write a tokens/s-by-setting bar chart (SVG) to this file")
    p.add_argument("--no-startup", action="store_true", help="skip timing the studio's start")
    p.add_argument("--no-quality", action="store_true",
                   help="skip time_to_quality (seed recipe and engine end to end, in fresh processes)")
    p.add_argument("--corpus-characters", type=int, default=0,
                   help="size of the large time_to_quality text (default 1,000,000; 100,000 with --quick)")
    p.add_argument("--quick", action="store_true",
                   help="a short smoke run: 5 timed steps, a 100,000-character corpus, no studio start")

    p = command("push", cmd_push, "upload a training output folder to the Hugging Face Hub as a model repo")
    p.add_argument("--model", required=True, help="training output folder")
    p.add_argument("--repo", required=True, help="repo name: 'name' (under your account) or 'owner/name'")
    p.add_argument("--what", default="auto", choices=["auto", "adapter", "merged", "both"],
                   help="LoRA runs: the adapter, the merged full model, or both (merged in the root, adapter in "
                        "adapter/); auto = adapter if the base model is on the Hub, else merged")
    p.add_argument("--private", action="store_true", help="create the repo as private")
    p.add_argument("--token-env", default="HF_TOKEN",
                   help="environment variable holding the access token (default %(default)s; there is deliberately "
                        "no flag for the token itself)")
    p.add_argument("--base-model", default="", help="Hub id of the base model, if training used a local copy of it")
    p.add_argument("--license", default="", help="license id for the model card (default: the base model's)")
    p.add_argument("--endpoint", default="", help="Hub URL (default: HF_ENDPOINT or https://huggingface.co)")

    p = command("export", cmd_export, "write a training output folder as a zip that loads without this tool")
    p.add_argument("--model", required=True, help="training output folder")
    p.add_argument("--out", required=True, help="the .zip file to write")
    p.add_argument("--merge", action="store_true", help="LoRA runs: merge the adapter into a full model")
    return parser


def quiet_libraries():
    """Keep the terminal for our own progress lines: no download bars or library chatter."""
    import warnings

    from transformers.utils import logging
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)  # libraries' deprecation notices about their own internals


def main(argv=None) -> int:
    try:
        args = build_parser().parse_args(argv)
        quiet_libraries()
        args.func(args)
    except UsageError as err:
        print(err, file=sys.stderr)
        return EXIT_USAGE
    except (FinetuneError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0
