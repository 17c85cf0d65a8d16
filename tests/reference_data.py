"""The list-based packing of finetune.data as it was before the compact path (commit 9f91691), kept
verbatim as the oracle that the compact path must reproduce exactly. Not used by the engine.

Every document becomes a Python list of ints and the packed stream a list of lists: fine for small
texts, gigabytes for a 50 MB corpus (scripts/bench_prepare.py measures both).
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import torch

from finetune.data import IGNORE, Dataset, Document
from finetune.errors import DataError
from finetune.tokens import encode_document


def group_texts(id_lists, block_size: int, eos_id: int) -> tuple[list[list[int]], int]:
    """Pack documents into blocks: each document's ids, then one EOS, all concatenated and cut into
    `block_size` pieces. Returns (blocks, dropped), `dropped` being the tail shorter than a block.
    Items of `id_lists` may be `Example`s, whose masked ids are kept in `Example.labels`."""
    if block_size < 2:
        raise ValueError("block_size must be at least 2")
    stream: list[int] = []
    for ids in id_lists:
        stream.extend(ids)
        stream.append(eos_id)
    usable = len(stream) // block_size * block_size
    blocks = [stream[i:i + block_size] for i in range(0, usable, block_size)]
    return blocks, len(stream) - usable


def label_stream(examples, eos_id: int) -> list[int]:
    """Labels aligned with `group_texts`' stream: the ids themselves, IGNORE over Q&A prompts."""
    labels: list[int] = []
    for ex in examples:
        labels.extend(ex.labels if isinstance(ex, Example) else ex)
        labels.append(eos_id)
    return labels


class Example(list):
    """Token ids of one document, plus its labels (ids with IGNORE over the prompt part)."""

    def __init__(self, prompt_ids: list[int], text_ids: list[int]):
        super().__init__(prompt_ids + text_ids)
        self.labels = [IGNORE] * len(prompt_ids) + list(text_ids)


def encode_example(tokenizer, doc: Document) -> list[int]:
    """A document's ids; a Q&A pair becomes an Example whose question is masked out of the loss."""
    if doc.prompt:
        return Example(encode_document(tokenizer, doc.prompt), encode_document(tokenizer, doc.text))
    return encode_document(tokenizer, doc.text)


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
    train = list(ids)
    heldout: list[list[int]] = []
    need = target
    while need > 0:
        last = train.pop()
        cut = max(0, len(last) + 1 - need)  # +1: the document's EOS goes with its tail
        heldout.insert(0, slice_ids(last, cut, len(last)))
        need -= len(last) + 1 - cut
        if cut:
            train.append(slice_ids(last, 0, cut))
    return Split(train, heldout, [f"{docs[-1].name} (end)"])


def slice_ids(ids: list[int], start: int, end: int) -> list[int]:
    """ids[start:end], keeping an Example's labels in step."""
    if not isinstance(ids, Example):
        return ids[start:end]
    part = Example([], ids[start:end])
    part.labels = ids.labels[start:end]
    return part


def build_dataset(docs: list[Document], tokenizer, block_size: int, heldout_fraction: float = 0.1,
                  seed: int = 42) -> Dataset:
    """Tokenize, split, and pack documents into training and held-out blocks."""
    if tokenizer.eos_token_id is None:
        raise DataError("the tokenizer has no EOS token to mark document boundaries")
    ids = [encode_example(tokenizer, d) for d in docs]
    split = split_heldout(docs, ids, heldout_fraction, block_size, seed)
    eos = tokenizer.eos_token_id
    train, dropped_train = group_texts(split.train, block_size, eos)
    heldout, dropped_held = group_texts(split.heldout, block_size, eos) if split.heldout else ([], 0)
    if not train:
        raise DataError(f"the text is too short for one {block_size}-token block; add text or lower the block size")
    masked = any(d.prompt for d in docs)
    return Dataset(
        train_labels=label_blocks(split.train, eos, len(train), block_size) if masked else None,
        heldout_labels=label_blocks(split.heldout, eos, len(heldout), block_size) if masked else None,
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


def label_blocks(examples, eos_id: int, n_blocks: int, block_size: int) -> torch.Tensor:
    """The labels of the first `n_blocks` packed blocks of `examples`."""
    labels = label_stream(examples, eos_id)[:n_blocks * block_size]
    return torch.tensor(labels, dtype=torch.long).reshape(n_blocks, block_size)
