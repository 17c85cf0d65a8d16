"""The compact packing path (finetune.data.build_dataset): the same blocks as the list path it replaced
(tests/reference_data.py), 4 bytes a token while packing, and a progress bar for large inputs."""
import dataclasses
import importlib.util
import io
import json
import os
import random
import subprocess
import sys

import pytest
import torch

import reference_data
from conftest import ROOT
from finetune import data
from finetune.data import IGNORE, Document, build_dataset, read_documents, token_stream
from finetune.errors import DataError
from finetune.progress import ProgressBar

CORPUS = ROOT / "assets" / "corpus"
FAQ = ROOT / "assets" / "samples" / "qa" / "faq.jsonl"


def bench_module():
    spec = importlib.util.spec_from_file_location("bench_prepare", ROOT / "scripts" / "bench_prepare.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tokenizer(tiny_model):
    from finetune.tokens import load_tokenizer
    return load_tokenizer(tiny_model)[0]


@pytest.fixture(scope="module")
def large_corpus(tmp_path_factory):
    """About 5 MB of Japanese text in ~50 files (the benchmark's generator)."""
    folder = tmp_path_factory.mktemp("corpus-5mb")
    bench_module().write_corpus(folder, 5)
    return folder


def assert_same_dataset(new, old):
    for f in dataclasses.fields(old):
        a, b = getattr(new, f.name), getattr(old, f.name)
        if isinstance(b, torch.Tensor):
            assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b), f.name
        else:
            assert a == b, f.name


def outcome(build, docs, tokenizer, block_size, fraction, seed):
    """The dataset, or the error raised (type and message)."""
    try:
        return build(docs, tokenizer, block_size, fraction, seed)
    except (DataError, ValueError) as err:
        return type(err), str(err)


# ---------------------------------------------------------------------------------------------- same blocks

@pytest.mark.parametrize("block_size,fraction,seed", [(128, 0.1, 42), (16, 0.25, 3), (64, 0.0, 0), (512, 0.1, 1)])
def test_corpus_packs_exactly_as_the_list_path(tokenizer, block_size, fraction, seed):
    docs = read_documents([CORPUS])
    new = build_dataset(docs, tokenizer, block_size, fraction, seed)
    assert_same_dataset(new, reference_data.build_dataset(docs, tokenizer, block_size, fraction, seed))
    assert new.train_labels is None and len(new.train_blocks) > 0


@pytest.mark.parametrize("block_size,fraction,seed", [(32, 0.1, 42), (8, 0.3, 5), (16, 0.0, 0), (256, 0.2, 0)])
def test_qa_pairs_pack_and_mask_exactly_as_the_list_path(tokenizer, block_size, fraction, seed):
    docs = read_documents([FAQ])
    assert all(d.prompt for d in docs)
    new = build_dataset(docs, tokenizer, block_size, fraction, seed)
    assert_same_dataset(new, reference_data.build_dataset(docs, tokenizer, block_size, fraction, seed))
    assert (new.train_labels == IGNORE).any() and new.heldout_labels.shape == new.heldout_blocks.shape


def test_one_document_holds_out_its_end_exactly_as_the_list_path(tokenizer, unseen_text):
    docs = read_documents([unseen_text])
    new = build_dataset(docs, tokenizer, 32, 0.1, 0)
    assert_same_dataset(new, reference_data.build_dataset(docs, tokenizer, 32, 0.1, 0))
    assert new.heldout_documents == [f"{unseen_text} (end)"]


class CharTokenizer:
    """One id per character: enough for packing, and fast enough for hundreds of random cases."""
    eos_token_id = 1

    def encode(self, text, add_special_tokens=False):
        return [10 + ord(c) % 40 for c in text]

    def __call__(self, texts, add_special_tokens=False, **kwargs):
        return {"input_ids": [self.encode(t) for t in texts]}


def random_documents(rng: random.Random) -> list[Document]:
    docs = []
    for i in range(rng.randint(0, 10)):
        text = "".join(rng.choice("あいうえおかきくけこ") for _ in range(rng.choice([0, 1, 5, 20, 80])))
        prompt = "問" * rng.randint(1, 12) if rng.random() < 0.4 else ""
        docs.append(Document(f"d{i}", text, prompt=prompt))
    return docs


def test_random_documents_pack_exactly_as_the_list_path(monkeypatch):
    """Held-out documents and tails cut inside questions, empty texts, several batches, errors."""
    monkeypatch.setattr(data, "BATCH_CHARACTERS", 50)
    monkeypatch.setattr(data, "BATCH_DOCUMENTS", 3)
    rng, tok, seen = random.Random(0), CharTokenizer(), set()
    for _ in range(600):
        docs = random_documents(rng)
        args = (rng.choice([1, 2, 3, 8, 16]), rng.choice([0, 0.1, 0.3, 0.6]), rng.randint(0, 9))
        new = outcome(build_dataset, docs, tok, *args)
        old = outcome(reference_data.build_dataset, docs, tok, *args)
        if isinstance(old, tuple):
            assert new == old
            seen.add(old[0].__name__)
            continue
        assert_same_dataset(new, old)
        if new.heldout_documents[-1:] and new.heldout_documents[-1].endswith("(end)"):
            seen.add("tail" + (" masked" if new.train_labels is not None else ""))
        elif new.heldout_documents:
            seen.add("documents" + (" masked" if new.train_labels is not None else ""))
    assert seen >= {"DataError", "ValueError", "tail", "tail masked", "documents", "documents masked"}


# ---------------------------------------------------------------------------------------------- memory

def test_tokens_are_stored_as_int32_four_bytes_each(tokenizer):
    docs = read_documents([CORPUS])
    stream = token_stream(docs, tokenizer)
    tokens = sum(len(tokenizer.encode(d.text, add_special_tokens=False)) + 1 for d in docs)
    assert len(stream.ids) == tokens and stream.ids.itemsize == 4
    address, length = stream.ids.buffer_info()
    view = stream.tensor()
    assert view.dtype == torch.int32 and view.numel() == length and view.data_ptr() == address  # no copy
    assert len(stream.ends) == len(docs) and stream.ends[-1] == tokens


def test_tokenizing_leaves_no_utf8_copy_on_the_documents(tokenizer):
    """CPython caches a str's UTF-8 form in the str once a tokenizer has read it (3 bytes a character)."""
    docs = [Document("a", "日本語の文章です。" * 1000)]
    before = sys.getsizeof(docs[0].text)
    token_stream(docs, tokenizer)
    assert sys.getsizeof(docs[0].text) == before


def packing_growth(path: str, folder) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}  # one thread: steady RSS
    result = subprocess.run([sys.executable, ROOT / "scripts" / "bench_prepare.py", "--worker", path,
                             "--measure", "packing", "--data", folder], capture_output=True, text=True, env=env,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


# Peak RSS growth while tokenizing and packing ~1M tokens, per token. The compact path needs about
# 12 (the int32 stream plus the int64 blocks) and one batch's transient lists: ~16 measured. The list
# path needs ~50 (a Python int and list slots per token, the blocks as lists, then the tensor).
BYTES_PER_TOKEN_BOUND = 32


@pytest.mark.parametrize("path", ["compact", "lists"])
def test_packing_memory_per_token(path, large_corpus):
    """Measured in a fresh process; the list path must exceed the bound, or the bound means nothing."""
    growth = packing_growth(path, large_corpus)
    assert growth["tokens"] > 900_000
    if path == "compact":
        assert growth["bytes_per_token"] < BYTES_PER_TOKEN_BOUND, growth
    else:
        assert growth["bytes_per_token"] > BYTES_PER_TOKEN_BOUND, growth


# ---------------------------------------------------------------------------------------------- progress

def test_progress_counts_characters_from_zero_to_all(tokenizer, monkeypatch):
    monkeypatch.setattr(data, "BATCH_CHARACTERS", 20_000)
    docs = read_documents([CORPUS, FAQ])
    calls = []
    build_dataset(docs, tokenizer, 128, progress=lambda done, total: calls.append((done, total)))
    total = sum(len(d.prompt) + len(d.text) for d in docs)
    assert calls[0] == (0, total) and calls[-1] == (total, total) and len(calls) > 10
    assert all(a[0] < b[0] for a, b in zip(calls, calls[1:]))


def test_progress_bar_only_for_large_inputs():
    out = io.StringIO()
    with ProgressBar("tokenizing", min_total=1000, file=out) as bar:
        for done in range(0, 901, 300):
            bar(done, 900)
    assert out.getvalue() == ""
    with ProgressBar("tokenizing", min_total=1000, file=out) as bar:
        for done in range(0, 5001, 1000):
            bar(done, 5000)
    assert "tokenizing" in out.getvalue() and "100%" in out.getvalue()
    silent = io.StringIO()
    with ProgressBar("tokenizing", min_total=1, file=silent, enabled=False) as bar:
        bar(5, 5)
    assert silent.getvalue() == ""


def test_cli_prepare_shows_a_progress_bar_on_stderr(large_corpus, tiny_model):
    result = subprocess.run([sys.executable, "-m", "finetune", "prepare", "--model", tiny_model, "--data",
                             large_corpus, "--json"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "tokenizing" in result.stderr and "100%" in result.stderr
    assert json.loads(result.stdout)["totals"]["tokens"] > 900_000


def test_training_passes_tokenizing_progress_on(tiny_model, unseen_text, tmp_path):
    from finetune.train import TrainSettings, train
    calls = []
    settings = TrainSettings(model=tiny_model, data=[str(unseen_text)], out=str(tmp_path / "run"), max_steps=1,
                             block_size=32, device="cpu", save_steps=10**6)
    train(settings, progress=lambda done, total: calls.append((done, total)))
    assert calls[0][0] == 0 and calls[-1][0] == calls[-1][1] > 0
