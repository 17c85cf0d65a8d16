"""Text in, training blocks out: read files, split a held-out part, pack tokens into blocks.

The recipe of the seed article, made explicit: every document is tokenized without special tokens,
followed by one EOS (the document boundary), concatenated, and cut into `block_size` pieces.
The tail that does not fill a block is dropped and counted.

`build_dataset` holds the tokens compactly, so a 50 MB corpus fits in bounded memory: documents are
tokenized in batches (the tokenizer's batch call) into one int32 array with an EOS after each
document (`TokenStream`, 4 bytes a token), and the blocks are copied out of it run by run. No Python
list of all the tokens is ever built. `group_texts` and `split_heldout` are the same steps on Python
lists (small inputs, tests); both paths give the same blocks.
"""
from __future__ import annotations

import math
import random
from array import array
from bisect import bisect_right
from dataclasses import dataclass, field

import torch

from .document import Document  # noqa: F401 (also imported from here: finetune.data.Document)
from .errors import DataError
from .formats import ReadOptions, Skip, decoded_text, read_inputs, usable_documents
from .tokens import encode_document


def decode_text(raw: bytes, name: str) -> tuple[str, str]:
    """Bytes to (text, encoding) with finetune.formats' detection: UTF-8 (with or without BOM), UTF-16
    with BOM, Shift_JIS/CP932, EUC-JP, ISO-2022-JP. Binary, undecodable or doubtfully decoded bytes
    are refused rather than guessed."""
    try:
        return decoded_text(raw)
    except Skip as skip:
        raise DataError(f"{name}: {skip}") from None


def read_documents(paths, options: ReadOptions | None = None) -> list[Document]:
    """Read files, folders and .zip archives (text, Markdown, HTML, records and blog exports, see
    finetune.formats) as cleaned documents: one per file, per record (Q&A pairs included) or per
    post, read as `options` say. Unusable inputs are left out; DataError, naming each one's reason,
    only when none is usable."""
    return usable_documents(read_inputs(paths, options=options))


def normalize_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


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


IGNORE = -100  # label of tokens the loss skips (Q&A questions)


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
    """`heldout_plan` on lists of ids: the training and held-out documents' ids."""
    plan = heldout_plan([len(x) + 1 for x in ids], fraction, block_size, seed)
    if plan.tail_start is not None:
        return tail_split(docs, ids, plan.tail_start)
    chosen = set(plan.documents)
    return Split([x for i, x in enumerate(ids) if i not in chosen], [ids[i] for i in plan.documents],
                 heldout_names(docs, plan))


def tail_split(docs: list[Document], ids: list[list[int]], start: int) -> Split:
    """Hold out the text from token `start` of the stream on (each document's EOS counted), cutting
    the document that `start` falls in: its first part trains, with an EOS of its own."""
    position = 0
    for j, doc_ids in enumerate(ids):
        if position + len(doc_ids) + 1 > start:
            break
        position += len(doc_ids) + 1
    cut = start - position
    train = list(ids[:j]) + ([slice_ids(doc_ids, 0, cut)] if cut else [])
    heldout = [slice_ids(doc_ids, cut, len(doc_ids)), *ids[j + 1:]]
    return Split(train, heldout, heldout_names(docs, HeldoutPlan(tail_start=start)))


@dataclass
class HeldoutPlan:
    """What is held out of the token stream: whole documents (indices, sorted), or everything from
    token `tail_start` on; neither when nothing is held out."""
    documents: list[int] = field(default_factory=list)
    tail_start: int | None = None


def heldout_plan(sizes: list[int], fraction: float, block_size: int, seed: int) -> HeldoutPlan:
    """Hold out whole documents (chosen with `seed`) until they hold `fraction` of the tokens and at
    least one block. When documents are too few or too large for that, hold out the last tokens of
    the text instead. `fraction` 0 holds out nothing. `sizes` are the documents' token counts, each
    with its EOS."""
    total = sum(sizes)
    if fraction <= 0:
        return HeldoutPlan()
    target = max(math.ceil(total * fraction), block_size)
    if total - target < block_size:
        raise DataError(
            f"the text is too short: {total} tokens, but a {block_size}-token training block plus a "
            f"{target}-token held-out part need {target + block_size}; add text, lower the block size, "
            "or set the held-out share to 0")
    order = list(range(len(sizes)))
    random.Random(seed).shuffle(order)
    held, held_tokens = [], 0
    for i in order:
        if held_tokens + sizes[i] <= max(2 * target, target + block_size):
            held.append(i)
            held_tokens += sizes[i]
        if held_tokens >= target:
            break
    if held_tokens >= target and len(held) < len(sizes):
        return HeldoutPlan(documents=sorted(held))
    return HeldoutPlan(tail_start=total - target)


def heldout_names(docs: list[Document], plan: HeldoutPlan) -> list[str]:
    """The held-out documents' names, as reported to the user."""
    if plan.tail_start is not None:
        return [f"{docs[-1].name} (end)"]
    return [docs[i].name for i in plan.documents]


def slice_ids(ids: list[int], start: int, end: int) -> list[int]:
    """ids[start:end], keeping an Example's labels in step."""
    if not isinstance(ids, Example):
        return ids[start:end]
    part = Example([], ids[start:end])
    part.labels = ids.labels[start:end]
    return part


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
    train_labels: torch.Tensor | None = None    # set when some tokens are masked (Q&A prompts)
    heldout_labels: torch.Tensor | None = None


def build_dataset(docs: list[Document], tokenizer, block_size: int, heldout_fraction: float = 0.1,
                  seed: int = 42, progress=None) -> Dataset:
    """Tokenize, split, and pack documents into training and held-out blocks. `progress(done, total)`,
    if given, follows the tokenization in characters."""
    if tokenizer.eos_token_id is None:
        raise DataError("the tokenizer has no EOS token to mark document boundaries")
    stream = token_stream(docs, tokenizer, progress)
    plan = heldout_plan(stream.sizes(), heldout_fraction, block_size, seed)
    if block_size < 2:
        raise ValueError("block_size must be at least 2")
    train_runs, heldout_runs = stream_runs(plan, stream)
    ids, eos = stream.tensor(), stream.eos_id
    train, dropped_train = packed_blocks(ids, train_runs, block_size, eos)
    heldout, dropped_held = packed_blocks(ids, heldout_runs, block_size, eos)
    if not len(train):
        raise DataError(f"the text is too short for one {block_size}-token block; add text or lower the block size")
    labels = stream.labels() if any(d.prompt for d in docs) else None
    return Dataset(
        train_labels=packed_blocks(labels, train_runs, block_size, eos)[0] if labels is not None else None,
        heldout_labels=packed_blocks(labels, heldout_runs, block_size, eos)[0] if labels is not None else None,
        train_blocks=train,
        heldout_blocks=heldout,
        documents=len(docs),
        characters=sum(len(d.text) for d in docs),
        train_tokens=train.numel(),
        heldout_tokens=heldout.numel(),
        dropped_tokens=dropped_train + dropped_held,
        heldout_documents=heldout_names(docs, plan),
        block_size=block_size,
    )


# ----------------------------------------------------------------------------------------------
# The compact path: one int32 array of all tokens, blocks copied out of it

ID_TYPECODE = "i"  # array's C int: 4 bytes on every platform torch supports
if array(ID_TYPECODE).itemsize != 4:
    raise ImportError(f"array typecode {ID_TYPECODE!r} is not 4 bytes on this platform")
# Characters per tokenizer batch call: enough that the per-call overhead vanishes (5% slower at 50k),
# few enough that one batch's encodings and Python lists stay near 13 MB whatever the corpus size.
BATCH_CHARACTERS = 200_000
# Q&A files hold thousands of short pairs; this caps one batch's lists for them too.
BATCH_DOCUMENTS = 1024


@dataclass
class TokenStream:
    """Every document's token ids followed by one EOS, concatenated in one int32 array: document i is
    ids[ends[i - 1]:ends[i]], EOS last. `prompts[i]` counts its first tokens that are a Q&A question
    (masked out of the loss)."""
    eos_id: int
    ids: array = field(default_factory=lambda: array(ID_TYPECODE))
    ends: array = field(default_factory=lambda: array("q"))
    prompts: array = field(default_factory=lambda: array("q"))

    def add(self, prompt_ids: list[int], text_ids: list[int]):
        self.ids.extend(prompt_ids)
        self.ids.extend(text_ids)
        self.ids.append(self.eos_id)
        self.ends.append(len(self.ids))
        self.prompts.append(len(prompt_ids))

    def sizes(self) -> list[int]:
        """Each document's token count, its EOS included."""
        return [end - start for start, end in zip([0, *self.ends[:-1]], self.ends)]

    def tensor(self) -> torch.Tensor:
        """The ids as an int32 tensor sharing this stream's memory (no copy)."""
        if not self.ids:
            return torch.empty(0, dtype=torch.int32)
        return torch.frombuffer(self.ids, dtype=torch.int32)

    def labels(self) -> torch.Tensor:
        """The ids with IGNORE over the Q&A questions (an int32 copy)."""
        prompts = torch.tensor(self.prompts, dtype=torch.long)
        rest = torch.tensor(self.sizes(), dtype=torch.long) - prompts
        counts = torch.stack([prompts, rest], dim=1).flatten()
        masked = torch.tensor([True, False]).repeat(len(self.prompts)).repeat_interleave(counts)
        return self.tensor().masked_fill(masked, IGNORE)


def token_stream(docs: list[Document], tokenizer, progress=None) -> TokenStream:
    """All documents tokenized, batch by batch, into one TokenStream. `progress(done, total)` is called
    before the first batch and after each one, in characters."""
    stream = TokenStream(tokenizer.eos_token_id)
    total = sum(len(d.prompt) + len(d.text) for d in docs)
    done = 0
    if progress:
        progress(done, total)
    for batch in document_batches(docs):
        prompts = iter(encoded_texts(tokenizer, [d.prompt for d in batch if d.prompt]))
        for doc, text_ids in zip(batch, encoded_texts(tokenizer, [d.text for d in batch])):
            stream.add(next(prompts) if doc.prompt else [], text_ids)
        done += sum(len(d.prompt) + len(d.text) for d in batch)
        if progress:
            progress(done, total)
    return stream


def document_batches(docs: list[Document]):
    """Consecutive runs of documents of about BATCH_CHARACTERS characters (at most BATCH_DOCUMENTS)."""
    batch, size = [], 0
    for doc in docs:
        batch.append(doc)
        size += len(doc.prompt) + len(doc.text)
        if size >= BATCH_CHARACTERS or len(batch) >= BATCH_DOCUMENTS:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def encoded_texts(tokenizer, texts: list[str]) -> list[list[int]]:
    """Each text's ids without special tokens (what encode_document gives), in one batch call."""
    if not texts:
        return []
    return tokenizer([passing_copy(t) for t in texts], add_special_tokens=False, return_attention_mask=False,
                     return_token_type_ids=False)["input_ids"]


def passing_copy(text: str) -> str:
    """An equal, new str object. The tokenizer reads a str as UTF-8, and CPython keeps that UTF-8 copy
    inside the str object for as long as it lives (3 bytes a Japanese character, on top of the text's
    own 2): giving the tokenizer a copy lets that buffer go with the batch instead of staying with
    the documents (50 MB more for a 50 MB corpus, for the whole of training)."""
    return "".join((text, ""))  # joining two strings always builds a new one; `text[:]` would not


@dataclass
class Runs:
    """The spans [start, end) of a TokenStream that, in order, make one packed stream; `closing_eos`
    adds an EOS after them (the training part of a document cut by the held-out tail)."""
    spans: list[tuple[int, int]]
    closing_eos: bool = False


def stream_runs(plan: HeldoutPlan, stream: TokenStream) -> tuple[Runs, Runs]:
    """(training runs, held-out runs) of the stream under `plan`."""
    total = len(stream.ids)
    if plan.tail_start is not None:
        start = plan.tail_start
        j = bisect_right(stream.ends, start)  # the document `start` falls in
        cut = start - (stream.ends[j - 1] if j else 0)
        return Runs([(0, start)], closing_eos=cut > 0), Runs([(start, total)])
    held = document_spans(plan.documents, stream.ends)
    return Runs(gaps(held, total)), Runs(held)


def document_spans(indices: list[int], ends) -> list[tuple[int, int]]:
    """The stream spans of the (sorted) documents, neighbours merged."""
    spans: list[tuple[int, int]] = []
    for i in indices:
        start = ends[i - 1] if i else 0
        if spans and spans[-1][1] == start:
            spans[-1] = (spans[-1][0], ends[i])
        else:
            spans.append((start, ends[i]))
    return spans


def gaps(spans: list[tuple[int, int]], total: int) -> list[tuple[int, int]]:
    """The parts of [0, total) that sorted, disjoint `spans` leave out."""
    edges = [0, *(x for span in spans for x in span), total]
    return [(start, end) for start, end in zip(edges[::2], edges[1::2]) if end > start]


def packed_blocks(source: torch.Tensor, runs: Runs, block_size: int, eos_id: int) -> tuple[torch.Tensor, int]:
    """The runs of `source` (a stream's ids or labels) concatenated and cut into (n, block_size) int64
    blocks, copied run by run. Returns (blocks, dropped), `dropped` being the tail shorter than a block."""
    length = sum(end - start for start, end in runs.spans) + runs.closing_eos
    usable = length // block_size * block_size
    flat = torch.empty(usable, dtype=torch.long)
    filled = 0
    for start, end in runs.spans:
        take = min(end - start, usable - filled)
        if take <= 0:
            break
        flat[filled:filled + take] = source[start:start + take]
        filled += take
    if filled < usable:  # only the closing EOS is left
        flat[filled] = eos_id
    return flat.view(-1, block_size), length - usable
