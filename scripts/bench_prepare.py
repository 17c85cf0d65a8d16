"""Speed and memory of preparing a large corpus (issue #6): one JSON line per figure.

    python scripts/bench_prepare.py                      # 50 MB, both paths (about 2.5 minutes on 2 cores)
    python scripts/bench_prepare.py --mb 5 --compare-mb 0 --packing-mb 0

The text is ~50 MB of Japanese made from the project's own corpus (assets/corpus): its sentences,
shuffled with a fixed seed into paragraphs and files of 4-200 KB, written to a temporary folder.
Each measurement runs `finetune.prepare.prepare` (read, clean, tokenize, pack, preview: what
`python -m finetune prepare` does) with the embedded tokenizer in a fresh Python process, so the
peak RSS it reports (VmHWM on Linux, else getrusage) is that run's own. `--compare-mb` prepares a
folder (by default the same one) with the list-based path the compact one replaced too
(tests/reference_data.py).

Figures (MB = 2**20 bytes of UTF-8 text on disk):
  corpus   the generated folder: files, MB
  prepare  path, mb, seconds (of which read_seconds, tokenize_pack_seconds), mb_per_s, tokens, blocks_mib (the
           int64 blocks handed to training), baseline_rss_mib (after imports and tokenizer),
           peak_rss_mib, added_rss_mib (peak - baseline), blocks_sha256 (equal across paths)
  rss_gain added_rss_mib of the list path / of the compact path, same text
  packing  peak RSS growth of tokenizing + packing alone (documents read, tokenizer warmed up
           first), per token: what grows with the corpus
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "assets" / "corpus"
TOKENIZER = ROOT / "assets" / "tiny-japanese-gpt2"
MB = 1024 * 1024
SEED = 0
# File sizes of the generated corpus, in bytes: a blog post to a short book chapter.
FILE_BYTES = (4_000, 200_000)


def figure(name: str, **values) -> dict:
    line = {"figure": name, **values}
    print(json.dumps(line, ensure_ascii=False), flush=True)
    return line


# ----------------------------------------------------------------------------------------------
# The corpus

def corpus_sentences() -> list[str]:
    """The sentences of assets/corpus (split after 。！？), in file order."""
    sentences = []
    for path in sorted(CORPUS.glob("*.txt")):
        for line in path.read_text(encoding="utf-8").splitlines():
            sentences += [s for s in re.findall(r"[^。！？]*[。！？]|[^。！？]+$", line.strip()) if s.strip()]
    return sentences


def file_text(rng: random.Random, sentences: list[str], size: int) -> str:
    """Paragraphs of 3-8 random sentences until about `size` bytes."""
    paragraphs, written = [], 0
    while written < size:
        paragraph = "".join(rng.choice(sentences) for _ in range(rng.randint(3, 8)))
        paragraphs.append(paragraph)
        written += len(paragraph.encode("utf-8")) + 2
    return "\n\n".join(paragraphs) + "\n"


def write_corpus(folder: Path, mb: float) -> tuple[int, int]:
    """Write about `mb` MB of shuffled corpus sentences as .txt files into `folder`; (files, bytes).
    The same `mb` always gives the same files."""
    rng = random.Random(SEED)
    sentences = corpus_sentences()
    folder.mkdir(parents=True, exist_ok=True)
    files = written = 0
    while written < mb * MB:
        data = file_text(rng, sentences, rng.randint(*FILE_BYTES)).encode("utf-8")
        (folder / f"doc-{files:05d}.txt").write_bytes(data)
        files += 1
        written += len(data)
    return files, written


# ----------------------------------------------------------------------------------------------
# One measurement, in its own process

def peak_rss_mib() -> float:
    """This process's peak resident set size so far. On Linux it is VmHWM from /proc/self/status, which
    starts afresh with each program: getrusage's ru_maxrss does not, Linux carries it over exec, so a
    worker started by a 2 GB process (pytest with models loaded) would report 2 GB before doing anything."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (MB if sys.platform == "darwin" else 1024)  # KiB elsewhere, bytes on macOS


def loaded_tokenizer():
    """The embedded tokenizer, with this project's modules importable and libraries quiet."""
    sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
    from finetune.cli import quiet_libraries
    from finetune.tokens import load_tokenizer
    quiet_libraries()
    return load_tokenizer(str(TOKENIZER))[0]


def measure(path: str, data: Path, block_size: int) -> dict:
    """Prepare `data` with the compact path or the list path ("lists"); the figures of that run."""
    tokenizer = loaded_tokenizer()
    from finetune import prepare as prepare_module
    marks = {}
    builder = list_builder() if path == "lists" else prepare_module.build_dataset

    def timed_builder(*args, **kwargs):
        marks["tokenize"] = time.perf_counter()
        dataset = builder(*args, **kwargs)
        marks["packed"] = time.perf_counter()
        return dataset

    prepare_module.build_dataset = timed_builder
    settings = prepare_module.PrepareSettings(data=[str(data)], model=str(TOKENIZER), block_size=block_size)
    baseline = peak_rss_mib()
    started = time.perf_counter()
    report = prepare_module.prepare(settings, tokenizer)
    seconds = time.perf_counter() - started
    if not report.usable:
        raise SystemExit(f"prepare failed: {report.error}")
    blocks = report.dataset.train_blocks
    megabytes = sum(f.stat().st_size for f in data.iterdir()) / MB
    return {"path": path, "mb": round(megabytes, 1), "seconds": round(seconds, 2),
            "read_seconds": round(marks["tokenize"] - started, 2),
            "tokenize_pack_seconds": round(marks["packed"] - marks["tokenize"], 2),
            "mb_per_s": round(megabytes / seconds, 2), "tokens": report.totals.tokens,
            "blocks_mib": round((blocks.numel() + report.dataset.heldout_blocks.numel()) * 8 / MB, 1),
            "baseline_rss_mib": round(baseline), "peak_rss_mib": round(peak_rss_mib()),
            "added_rss_mib": round(peak_rss_mib() - baseline),
            "blocks_sha256": hashlib.sha256(blocks.numpy().tobytes()).hexdigest()[:16]}


def measure_packing(path: str, data: Path, block_size: int) -> dict:
    """Peak RSS growth of tokenizing and packing alone, per token: the documents are read and the
    tokenizer has run once (its own working memory is paid) before the baseline is taken."""
    import gc
    tokenizer = loaded_tokenizer()
    from finetune.data import build_dataset, read_documents, token_stream
    docs = read_documents([data])
    token_stream(docs[:max(1, len(docs) // 10)], tokenizer)  # warm-up, thrown away
    gc.collect()
    builder = list_builder() if path == "lists" else build_dataset
    baseline = peak_rss_mib()
    dataset = builder(docs, tokenizer, block_size)
    tokens = dataset.train_tokens + dataset.heldout_tokens + dataset.dropped_tokens
    added = peak_rss_mib() - baseline
    return {"path": path, "tokens": tokens, "added_rss_mib": round(added, 1),
            "bytes_per_token": round(added * MB / tokens, 1)}


def list_builder():
    """The list-based build_dataset this project used before the compact path (same signature)."""
    from reference_data import build_dataset as build_with_lists

    def build(docs, tokenizer, block_size, heldout_fraction=0.1, seed=42, progress=None):
        return build_with_lists(docs, tokenizer, block_size, heldout_fraction, seed)
    return build


def measured(path: str, data: Path, block_size: int, what: str = "prepare") -> dict:
    """`measure` (or `measure_packing`, what="packing") in a fresh Python process, so that its peak
    RSS is its own."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, __file__, "--worker", path, "--measure", what, "--data", str(data),
                             "--block-size", str(block_size)], capture_output=True, text=True, env=env)
    if result.returncode:
        raise SystemExit(f"the {path} run failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------------------------

def run(mb: float, compare_mb: float, packing_mb: float, block_size: int):
    with tempfile.TemporaryDirectory(prefix="bench-prepare-") as tmp:
        folders: dict[float, Path] = {}

        def corpus(size: float) -> Path:
            """The generated folder of `size` MB (written, and reported, once)."""
            if size not in folders:
                folders[size] = Path(tmp) / f"{size:g}mb"
                files, written = write_corpus(folders[size], size)
                figure("corpus", files=files, mb=round(written / MB, 1), source="assets/corpus sentences, shuffled")
            return folders[size]

        compact = figure("prepare", **measured("compact", corpus(mb), block_size))
        if compare_mb > 0:
            if compare_mb != mb:
                compact = figure("prepare", **measured("compact", corpus(compare_mb), block_size))
            lists = figure("prepare", **measured("lists", corpus(compare_mb), block_size))
            figure("rss_gain", mb=compact["mb"], lists_added_rss_mib=lists["added_rss_mib"],
                   compact_added_rss_mib=compact["added_rss_mib"],
                   ratio=round(lists["added_rss_mib"] / max(compact["added_rss_mib"], 1), 1),
                   same_blocks=lists["blocks_sha256"] == compact["blocks_sha256"])
        if packing_mb > 0:
            for path in ("compact", "lists"):
                growth = measured(path, corpus(packing_mb), block_size, "packing")
                figure("packing", mb=round(packing_mb, 1), **growth)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=50, help="size of the generated corpus (default %(default)s)")
    parser.add_argument("--compare-mb", type=float, default=50,
                        help="size prepared with the list path too; 0 skips (default %(default)s)")
    parser.add_argument("--packing-mb", type=float, default=10,
                        help="size of the per-token memory figure of both paths; 0 skips (default %(default)s)")
    parser.add_argument("--block-size", type=int, default=128, help="tokens per block (default %(default)s)")
    parser.add_argument("--worker", choices=["compact", "lists"], help=argparse.SUPPRESS)
    parser.add_argument("--measure", choices=["prepare", "packing"], default="prepare", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker = measure_packing if args.measure == "packing" else measure
        print(json.dumps(worker(args.worker, args.data, args.block_size)))
        return
    if args.mb <= 0 or args.compare_mb < 0 or args.packing_mb < 0:
        parser.error("--mb must be positive, --compare-mb and --packing-mb at least 0")
    run(args.mb, args.compare_mb, args.packing_mb, args.block_size)


if __name__ == "__main__":
    main()
