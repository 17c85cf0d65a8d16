"""Text in, training blocks out: read files, split a held-out part, pack tokens into blocks.

The recipe of the seed article, made explicit: every document is tokenized without special tokens,
followed by one EOS (the document boundary), concatenated, and cut into `block_size` pieces.
The tail that does not fill a block is dropped and counted.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .errors import DataError
from .tokens import encode_document

TEXT_SUFFIXES = (".txt",)


@dataclass
class Document:
    """One unit of the user's text: a file, or a pasted text."""
    name: str
    text: str
    encoding: str = "utf-8"


def decode_text(raw: bytes, name: str) -> tuple[str, str]:
    """Bytes to text. UTF-8 (with or without BOM), UTF-16 with BOM, then Shift_JIS/CP932;
    a file that is none of these is refused rather than guessed."""
    if b"\x00" in raw[:4096] and not raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DataError(f"{name}: looks binary, not text")
    if raw.startswith(b"\xef\xbb\xbf"):
        return raw[3:].decode("utf-8"), "utf-8-sig"
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16"), "utf-16"
    for encoding in ("utf-8", "cp932"):
        try:
            return raw.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    raise DataError(f"{name}: not UTF-8 or Shift_JIS text (cannot decode it without garbling)")


def read_documents(paths) -> list[Document]:
    """Read .txt files (and the .txt files inside folders) as documents, one per file."""
    docs = []
    for path in map(Path, paths):
        if not path.exists():
            raise DataError(f"{path}: no such file")
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in TEXT_SUFFIXES) if path.is_dir() else [path]
        if path.is_dir() and not files:
            raise DataError(f"{path}: the folder has no .txt files")
        for file in files:
            text, encoding = decode_text(file.read_bytes(), str(file))
            text = normalize_newlines(text)
            if not text.strip():
                raise DataError(f"{file}: the file is empty")
            docs.append(Document(str(file), text, encoding))
    if not docs:
        raise DataError("no text given")
    return docs


def normalize_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def group_texts(id_lists, block_size: int, eos_id: int) -> tuple[list[list[int]], int]:
    """Pack documents into blocks: each document's ids, then one EOS, all concatenated and cut into
    `block_size` pieces. Returns (blocks, dropped), `dropped` being the tail shorter than a block."""
    if block_size < 2:
        raise ValueError("block_size must be at least 2")
    stream: list[int] = []
    for ids in id_lists:
        stream.extend(ids)
        stream.append(eos_id)
    usable = len(stream) // block_size * block_size
    blocks = [stream[i:i + block_size] for i in range(0, usable, block_size)]
    return blocks, len(stream) - usable


@dataclass
class Split:
    """Token ids of the training and held-out documents."""
    train: list[list[int]]
    heldout: list[list[int]]
    heldout_names: list[str] = field(default_factory=list)


def split_heldout(docs: list[Document], ids: list[list[int]], fraction: float, block_size: int,
                  seed: int) -> Split:
    """Hold out whole documents (chosen with `seed`) until they hold `fraction` of the tokens and at
    least one block. When documents are too few or too large for that, hold out the last tokens of
    the text instead. `fraction` 0 holds out nothing."""
    total = sum(len(x) + 1 for x in ids)
    if fraction <= 0:
        return Split(ids, [])
    target = max(math.ceil(total * fraction), block_size)
    if total - target < block_size:
        raise DataError(
            f"the text is too short: {total} tokens, but a {block_size}-token training block plus a "
            f"{target}-token held-out part need {target + block_size}; add text, lower the block size, "
            "or set the held-out share to 0")
    order = list(range(len(docs)))
    random.Random(seed).shuffle(order)
    held, held_tokens = [], 0
    for i in order:
        size = len(ids[i]) + 1
        if held_tokens + size <= max(2 * target, target + block_size):
            held.append(i)
            held_tokens += size
        if held_tokens >= target:
            break
    if held_tokens >= target and len(held) < len(docs):
        chosen = set(held)
        return Split([x for i, x in enumerate(ids) if i not in chosen], [ids[i] for i in sorted(chosen)],
                     [docs[i].name for i in sorted(chosen)])
    return tail_split(docs, ids, target)


def tail_split(docs: list[Document], ids: list[list[int]], target: int) -> Split:
    """Hold out the last `target` tokens of the text (cutting the last documents)."""
    train = [list(x) for x in ids]
    heldout: list[list[int]] = []
    need = target
    while need > 0:
        last = train[-1]
        take = min(need, len(last) + 1)
        cut = len(last) + 1 - take
        heldout.insert(0, last[cut:])
        del last[cut:]
        need -= take
        if not last:
            train.pop()
    return Split(train, heldout, [f"{docs[-1].name} (end)"])


@dataclass
class Dataset:
    """Everything training needs from the text, plus the numbers the user sees first."""
    train_blocks: torch.Tensor      # (n, block_size) int64
    heldout_blocks: torch.Tensor    # (m, block_size) int64, m may be 0 when nothing is held out
    documents: int
    characters: int
    train_tokens: int               # tokens in train blocks (what the model sees per epoch)
    heldout_tokens: int
    dropped_tokens: int             # tails shorter than a block, train + held-out
    heldout_documents: list[str]
    block_size: int


def build_dataset(docs: list[Document], tokenizer, block_size: int, heldout_fraction: float = 0.1,
                  seed: int = 42) -> Dataset:
    """Tokenize, split, and pack documents into training and held-out blocks."""
    if tokenizer.eos_token_id is None:
        raise DataError("the tokenizer has no EOS token to mark document boundaries")
    ids = [encode_document(tokenizer, d.text) for d in docs]
    split = split_heldout(docs, ids, heldout_fraction, block_size, seed)
    train, dropped_train = group_texts(split.train, block_size, tokenizer.eos_token_id)
    heldout, dropped_held = group_texts(split.heldout, block_size, tokenizer.eos_token_id) if split.heldout else ([], 0)
    if not train:
        raise DataError(f"the text is too short for one {block_size}-token block; add text or lower the block size")
    return Dataset(
        train_blocks=torch.tensor(train, dtype=torch.long),
        heldout_blocks=torch.tensor(heldout, dtype=torch.long).reshape(-1, block_size),
        documents=len(docs),
        characters=sum(len(d.text) for d in docs),
        train_tokens=len(train) * block_size,
        heldout_tokens=len(heldout) * block_size,
        dropped_tokens=dropped_train + dropped_held,
        heldout_documents=split.heldout_names,
        block_size=block_size,
    )
