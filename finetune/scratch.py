"""A new tokenizer and a new small GPT-2 from nothing but the user's text: the seed article's
「単語から学習」 stage. Also how the embedded offline model in assets/ is made."""
from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .data import Document, read_documents
from .errors import DataError
from .tokens import spm_backend
from .train import TrainSettings, train

SPECIALS = {"unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>"}


@dataclass
class ModelShape:
    """Size of the new GPT-2 (defaults give about 5M parameters, under 20 MB in fp32)."""
    vocab_size: int = field(default=6000, metadata={"help": "sentencepiece vocabulary size"})
    layers: int = field(default=4, metadata={"help": "transformer blocks"})
    width: int = field(default=256, metadata={"help": "hidden size (n_embd)"})
    heads: int = field(default=4, metadata={"help": "attention heads; must divide width"})
    context: int = field(default=512, metadata={"help": "longest sequence the model can read (n_positions)"})

    def __post_init__(self):
        if self.vocab_size < 300:
            raise ValueError(f"vocab size must be at least 300, got {self.vocab_size}")
        if self.width % self.heads:
            raise ValueError(f"width {self.width} is not divisible by heads {self.heads}")
        if min(self.layers, self.width, self.heads, self.context) < 1:
            raise ValueError("layers, width, heads and context must be positive")


def train_sentencepiece(docs: list[Document], prefix: Path, vocab_size: int) -> Path:
    """Train a unigram sentencepiece model with byte fallback (no character is ever unknown) and
    newlines as tokens. Ids: <unk>=0, <s>=1, </s>=2, <pad>=3, as in rinna's models; "\n"=4.
    Returns the .model path."""
    import sentencepiece as spm
    lines = [d.text for d in docs if d.text.strip()]
    if not lines:
        raise DataError("no text to train a tokenizer on")
    options = dict(model_type="unigram", unk_id=0, bos_id=1, eos_id=2, pad_id=3, pad_piece="<pad>",
                   byte_fallback=True,
                   character_coverage=0.9995,        # rare characters fall back to bytes
                   add_dummy_prefix=False,           # Japanese has no spaces to mark word starts
                   user_defined_symbols=["\n"],      # keep line and paragraph breaks (nmt_nfkc would make them spaces)
                   remove_extra_whitespaces=False,   # keep indentation and spacing as written
                   max_sentence_length=1 << 20,      # whole documents are the training sentences
                   normalization_rule_name="nmt_nfkc", minloglevel=2, num_threads=2)
    try:
        spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_prefix=str(prefix),
                                       vocab_size=vocab_size, **options)
    except RuntimeError as err:
        # Small corpora cannot fill a large vocabulary; sentencepiece names the largest that fits.
        fits = re.search(r"<= (\d+)", str(err))
        if not fits:
            raise DataError(f"sentencepiece could not train on this text: {err}") from err
        spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_prefix=str(prefix),
                                       vocab_size=int(fits.group(1)), **options)
    return prefix.with_suffix(".model")


def new_tokenizer(spm_file: Path, max_length: int):
    """A transformers fast tokenizer over the sentencepiece model (exact parity, no EOS appended)."""
    from transformers import PreTrainedTokenizerFast
    return PreTrainedTokenizerFast(tokenizer_object=spm_backend(spm_file, lowercase=False),
                                   model_max_length=max_length, **SPECIALS)


def new_model(tokenizer, shape: ModelShape):
    """A randomly initialised GPT-2 sized by `shape` for this tokenizer."""
    from transformers import GPT2Config, GPT2LMHeadModel
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=shape.context, n_embd=shape.width,
                        n_layer=shape.layers, n_head=shape.heads, bos_token_id=tokenizer.bos_token_id,
                        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    return GPT2LMHeadModel(config)


def initial_folder(docs: list[Document], folder: Path, shape: ModelShape, seed: int) -> Path:
    """Write a new tokenizer and an untrained model into `folder`."""
    import torch
    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    spm_file = train_sentencepiece(docs, folder / "spiece", shape.vocab_size)
    tokenizer = new_tokenizer(spm_file, shape.context)
    tokenizer.save_pretrained(folder)
    new_model(tokenizer, shape).save_pretrained(folder)
    return folder


def scratch(settings: TrainSettings, shape: ModelShape, on_event=None, stop=None, progress=None) -> dict:
    """Train a tokenizer and a model from scratch on `settings.data`; the result lands in
    `settings.out` like any fine-tuning run (held-out perplexity before = the untrained model).
    `progress(done, total)` follows the tokenization (finetune.data.build_dataset)."""
    docs = read_documents(settings.data, settings.reading)
    with tempfile.TemporaryDirectory(prefix="finetune-scratch-") as tmp:
        init = initial_folder(docs, Path(tmp) / "init", shape, settings.seed)
        run = TrainSettings(**{**settings.__dict__, "model": str(init), "method": "full",
                               "block_size": min(settings.block_size, shape.context)})
        metrics = train(run, on_event=on_event, stop=stop, base_label="scratch", progress=progress)
    return metrics
