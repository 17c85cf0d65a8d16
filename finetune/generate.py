"""Text generation: sampling controls, streaming, reproducible seeds, and the decoding loop.

One implementation serves a single prompt (the CLI: `stream`, `generate`) and many prompts at once
(the studio: finetune/batching.py): a `Batch` holds rows of one model, left-padded with an attention
mask, their own position ids and one shared KV cache; `next_tokens` applies each row's own sampling
rules. Every row draws from its own `torch.Generator`, so "same seed, same prompt, same model = same
text" holds whatever else is decoded beside it, up to float rounding: a batched matrix product may
differ from a single one in the last bit, which changes a token only where two candidates are that
close (seen with random weights, whose distributions are nearly flat; not with the trained models
of the tests).
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .tokens import encode_prompt


@dataclass
class GenerationSettings:
    max_new_tokens: int = field(default=80, metadata={"help": "tokens to generate after the prompt"})
    temperature: float = field(default=0.8, metadata={"help": "randomness; 0 = always the most likely token"})
    top_p: float = field(default=0.95, metadata={"help": "nucleus sampling: keep the smallest set with this probability"})
    top_k: int = field(default=50, metadata={"help": "keep only the k most likely tokens; 0 = no limit"})
    repetition_penalty: float = field(default=1.1, metadata={"help": "> 1 discourages repeating tokens"})
    seed: int = field(default=0, metadata={"help": "same seed, same model, same prompt = same text"})

    def __post_init__(self):
        if not 1 <= self.max_new_tokens <= 2048:
            raise ValueError(f"max new tokens must be between 1 and 2048, got {self.max_new_tokens}")
        if not 0 <= self.temperature <= 5:
            raise ValueError(f"temperature must be between 0 and 5, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top-p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"top-k must be 0 or more, got {self.top_k}")
        if not 0.5 <= self.repetition_penalty <= 3:
            raise ValueError(f"repetition penalty must be between 0.5 and 3, got {self.repetition_penalty}")


def room_for(model, prompt_length: int, wanted: int) -> int:
    """New tokens that fit in the model's context after the prompt (GPT-2 cannot read past
    n_positions); at least 1, or the prompt itself is refused as too long."""
    context = getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", None)
    if context is None:
        return wanted
    if prompt_length >= context:
        raise ValueError(f"the prompt is {prompt_length} tokens; this model reads at most {context}")
    return min(wanted, context - prompt_length)



def prompt_tensor(model, tokenizer, prompt: str) -> torch.Tensor:
    device = next(model.parameters()).device
    return torch.tensor([encode_prompt(tokenizer, prompt)], device=device)


# ---------------------------------------------------------------------------------------------
# Sampling rules, row by row

def next_tokens(logits: torch.Tensor, seen: torch.Tensor, rows: list[Row]) -> torch.Tensor:
    """The next token of every row under its own settings: the repetition penalty on tokens the row
    has seen (its prompt and its own output), then the most likely token (temperature 0) or a draw
    from the row's generator after temperature, top-k and top-p."""
    settings = [row.settings for row in rows]
    penalty = logits.new_tensor([s.repetition_penalty for s in settings])[:, None]
    logits = torch.where(seen, torch.where(logits > 0, logits / penalty, logits * penalty), logits)
    tokens = logits.argmax(dim=-1)
    sampled = [i for i, s in enumerate(settings) if s.temperature > 0]
    if sampled:
        tokens[sampled] = drawn_tokens(logits[sampled], [rows[i] for i in sampled])
    return tokens


def drawn_tokens(logits: torch.Tensor, rows: list[Row]) -> torch.Tensor:
    """One token per row, drawn by inverse transform from the row's own uniform draw over its allowed
    tokens taken in vocabulary order. A row's draw depends only on its own logits (the batch's wider
    top-k adds zero weights), and in vocabulary order two nearly equal logits swapping places by a
    rounding difference cannot change which token the draw lands on."""
    vocab = logits.shape[-1]
    limits = [row.settings.top_k if 0 < row.settings.top_k < vocab else vocab for row in rows]
    width = max(limits)  # sorting only the widest top-k, not the whole vocabulary, keeps a step cheap
    temperature = logits.new_tensor([row.settings.temperature for row in rows])[:, None]
    top, order = (logits / temperature).topk(width, dim=-1)  # most likely first
    ranks = torch.arange(width, device=logits.device)
    weights = (top - top[:, :1]).exp() * (ranks < logits.new_tensor(limits)[:, None])
    top_p = logits.new_tensor([row.settings.top_p for row in rows])[:, None]
    cumulative = weights.cumsum(dim=-1)
    # top-p: keep the most likely tokens until their share of the mass reaches top_p (the first always)
    weights = weights * ((cumulative - weights) < top_p * cumulative[:, -1:])
    tokens, by_id = order.sort(dim=-1)
    cumulative = weights.gather(1, by_id).cumsum(dim=-1)
    draws = torch.stack([torch.rand((), generator=row.generator) for row in rows]).to(logits)
    picks = torch.searchsorted(cumulative, (draws[:, None] * cumulative[:, -1:]).contiguous(), right=True)
    return tokens.gather(1, picks.clamp(max=width - 1)).squeeze(1)


# ---------------------------------------------------------------------------------------------
# Rows and the batch that decodes them

@dataclass(eq=False)
class Row:
    """One prompt being continued: its settings and generator, the new tokens it has produced."""
    prompt_ids: list[int]
    settings: GenerationSettings
    budget: int                   # new tokens allowed: max_new_tokens within the model's context
    eos_id: int | None
    generator: torch.Generator = field(init=False)
    tokens: list[int] = field(default_factory=list)  # new tokens, without the EOS that ended them
    produced: int = 0
    done: bool = False

    def __post_init__(self):
        self.generator = torch.Generator().manual_seed(self.settings.seed)

    def take(self, token: int):
        self.produced += 1
        if token == self.eos_id:
            self.done = True
            return
        self.tokens.append(token)
        self.done = self.produced >= self.budget


def new_row(model, tokenizer, prompt: str, settings: GenerationSettings, row_class=Row) -> Row:
    """A row for `prompt` (ValueError when the prompt alone fills the model's context)."""
    ids = encode_prompt(tokenizer, prompt)
    return row_class(prompt_ids=ids, settings=settings, budget=room_for(model, len(ids), settings.max_new_tokens),
                     eos_id=tokenizer.eos_token_id)


class ForwardCall:
    """Calls a causal LM for the last position's logits with an attention mask, position ids and a
    KV cache, under the argument names this transformers version uses (`cache` from 5.2x,
    `past_key_values` before); works through a PEFT wrapper too."""

    def __init__(self, model):
        self.model = model
        inner = model.get_base_model() if hasattr(model, "get_base_model") else model
        params = inspect.signature(inner.forward).parameters
        self.cache_name = "cache" if "cache" in params else "past_key_values"
        # only the last position's logits: the vocabulary projection over a whole prompt is the costly part
        self.last_only = {"logits_to_keep": 1} if "logits_to_keep" in params else {}

    def __call__(self, ids: torch.Tensor, mask: torch.Tensor, cache):
        positions = (mask.cumsum(dim=-1) - 1).clamp(min=0)[:, -ids.shape[1]:]
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True,
                         **{self.cache_name: cache}, **self.last_only)
        cache = out["cache"] if "cache" in out else out["past_key_values"]
        return out.logits[:, -1, :].float(), cache


def plain_layers(cache) -> list | None:
    """The cache's layers when each holds whole key/value tensors of shape [rows, heads, length, dim]
    (a DynamicCache of full-attention layers), which is what rows can be merged into; else None."""
    from transformers.cache_utils import DynamicCache, DynamicLayer
    layers = getattr(cache, "layers", None) if isinstance(cache, DynamicCache) else None
    if not layers or any(type(layer) is not DynamicLayer or not layer.is_initialized for layer in layers):
        return None
    return layers


def left_padded(t: torch.Tensor, length: int, dim: int) -> torch.Tensor:
    """`t` with zeros added before its `dim` axis (-1 or -2) up to `length`."""
    pad = length - t.shape[dim]
    if pad == 0:
        return t
    return F.pad(t, (pad, 0) if dim == -1 else (0, 0, pad, 0))


class Batch:
    """Rows of one model decoded together, one forward pass per token for all of them. Rows are
    left-padded to a common length; the mask marks real tokens and gives each row its own positions.
    `admit` prefills new rows and merges them in (between any two steps, when the cache is a plain
    DynamicCache; otherwise only into an empty batch); `step` adds one token to every row. A row
    leaves as soon as it is done (EOS, its budget) or `remove` takes it out. Call under
    torch.inference_mode(); not thread-safe (one thread drives a batch)."""

    def __init__(self, model, call: ForwardCall | None = None):
        self.call = call or ForwardCall(model)
        self.device = next(model.parameters()).device
        self.rows: list[Row] = []
        self.cache = None
        self.mask: torch.Tensor | None = None   # [rows, length]: 1 for real tokens, 0 for left padding
        self.seen: torch.Tensor | None = None   # [rows, vocabulary]: tokens each row has seen
        self.last: torch.Tensor | None = None   # [rows]: the token each row feeds next

    def accepts_newcomers(self) -> bool:
        return not self.rows or plain_layers(self.cache) is not None

    def admit(self, rows: list[Row]):
        """Prefill `rows` together, sample their first tokens, and merge those not yet done."""
        if not self.accepts_newcomers():
            raise RuntimeError("this model's cache cannot take new rows while others decode")
        width = max(len(row.prompt_ids) for row in rows)
        ids = torch.tensor([[0] * (width - len(r.prompt_ids)) + r.prompt_ids for r in rows], device=self.device)
        mask = torch.tensor([[0] * (width - len(r.prompt_ids)) + [1] * len(r.prompt_ids) for r in rows],
                            device=self.device)
        logits, cache = self.call(ids, mask, None)
        layers = plain_layers(cache)
        if layers is not None and not bool(mask.all()):
            hidden = (mask == 0)[:, None, :, None]
            for layer in layers:  # padding's keys and values, never attended to: zeros rather than NaN
                layer.keys.masked_fill_(hidden, 0)
                layer.values.masked_fill_(hidden, 0)
        # the repetition penalty sees the prompt: padding stands for the row's last (real) token
        seen = torch.zeros(logits.shape, dtype=torch.bool, device=self.device)
        seen.scatter_(1, torch.where(mask.bool(), ids, ids[:, -1:]), True)
        part = Batch(self.call.model, self.call)
        part.rows, part.cache, part.mask, part.seen = list(rows), cache, mask, seen
        part.advance(logits)
        self.join(part)

    def step(self):
        """One more token for every row."""
        if not self.rows:
            return
        self.mask = torch.cat([self.mask, self.mask.new_ones(len(self.rows), 1)], dim=1)
        logits, self.cache = self.call(self.last[:, None], self.mask, self.cache)
        self.advance(logits)

    def advance(self, logits: torch.Tensor):
        tokens = next_tokens(logits, self.seen, self.rows)
        self.seen.scatter_(1, tokens[:, None], True)
        self.last = tokens
        for row, token in zip(self.rows, tokens.tolist()):
            row.take(token)
        self.keep([i for i, row in enumerate(self.rows) if not row.done])

    def remove(self, leaving) -> list[Row]:
        """Take out the rows for which `leaving(row)` is true; returns them."""
        gone = [row for row in self.rows if leaving(row)]
        if gone:
            self.keep([i for i, row in enumerate(self.rows) if not leaving(row)])
        return gone

    def keep(self, indices: list[int]):
        if len(indices) == len(self.rows):
            return
        if not indices:
            self.rows, self.cache, self.mask, self.seen, self.last = [], None, None, None, None
            return
        index = torch.tensor(indices, device=self.device)
        self.rows = [self.rows[i] for i in indices]
        self.mask, self.seen, self.last = self.mask[index], self.seen[index], self.last[index]
        layers = plain_layers(self.cache)
        if layers is None:
            self.cache.batch_select_indices(index)
            return
        # columns that are padding in every row left with the rows that needed them
        start = int((self.mask.sum(dim=0) == 0).int().cumprod(dim=0).sum())
        self.mask = self.mask[:, start:]
        for layer in layers:
            layer.keys, layer.values = layer.keys[index, :, start:], layer.values[index, :, start:]

    def join(self, other: Batch):
        """Append `other`'s rows, left-padding whichever side is shorter."""
        if not other.rows:
            return
        if not self.rows:
            self.rows, self.cache, self.mask, self.seen, self.last = \
                other.rows, other.cache, other.mask, other.seen, other.last
            return
        length = max(self.mask.shape[1], other.mask.shape[1])
        for mine, theirs in zip(plain_layers(self.cache), plain_layers(other.cache)):
            mine.keys = torch.cat([left_padded(mine.keys, length, -2), left_padded(theirs.keys, length, -2)])
            mine.values = torch.cat([left_padded(mine.values, length, -2), left_padded(theirs.values, length, -2)])
        self.mask = torch.cat([left_padded(self.mask, length, -1), left_padded(other.mask, length, -1)])
        self.seen = torch.cat([self.seen, other.seen])
        self.last = torch.cat([self.last, other.last])
        self.rows = self.rows + other.rows


# ---------------------------------------------------------------------------------------------
# Text, piece by piece

class TextPieces:
    """The text of a growing list of new tokens, handed out as the pieces not yet given; a piece is
    held back while its last character's bytes are still incomplete (byte-fallback tokens). The
    pieces joined are the decoding of all the tokens, as `generate` returns it."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.given = 0

    def add(self, ids: list[int]) -> str:
        self.ids.extend(ids)
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if text.endswith("\ufffd"):
            return ""
        return self.piece(text)

    def rest(self) -> str:
        return self.piece(self.tokenizer.decode(self.ids, skip_special_tokens=True))

    def piece(self, text: str) -> str:
        piece, self.given = text[self.given:], max(self.given, len(text))
        return piece


def stream(model, tokenizer, prompt: str, settings: GenerationSettings | None = None):
    """Yield the continuation of `prompt` piece by piece as it is generated, in the calling thread
    (a batch of one). Closing the generator early (a Stop button, a closed page) stops at the next
    token. The studio serves many visitors at once through finetune.batching instead."""
    settings = settings or GenerationSettings()
    row = new_row(model, tokenizer, prompt, settings)
    batch = Batch(model)
    pieces = TextPieces(tokenizer)
    with torch.inference_mode():
        batch.admit([row])
    given = 0
    while True:
        piece = pieces.add(row.tokens[given:])
        given = len(row.tokens)
        if piece:
            yield piece
        if row.done:
            break
        with torch.inference_mode():  # not held across a yield: the caller's code runs in between
            batch.step()
    rest = pieces.rest()
    if rest:
        yield rest


def generate(model, tokenizer, prompt: str, settings: GenerationSettings | None = None) -> str:
    """The whole continuation of `prompt` (without the prompt itself)."""
    settings = settings or GenerationSettings()
    row = new_row(model, tokenizer, prompt, settings)
    batch = Batch(model)
    with torch.inference_mode():
        batch.admit([row])
        while not row.done:
            batch.step()
    return tokenizer.decode(row.tokens, skip_special_tokens=True)
