"""Tokenizers: load them correctly, check them against sentencepiece, and show what they do.

rinna's models (and many other Japanese ones) ship a sentencepiece `spiece.model` and declare
`tokenizer_class: T5Tokenizer`. In transformers 5 that class rebuilds the model with `unk_id=2` and
`byte_fallback=False` hard-coded and ignores `do_lower_case`, so unknown characters silently become
id 2 (`</s>` for rinna) and upper-case ASCII falls apart. It also appends `</s>` to every text.
`load_tokenizer` detects that by comparing against the sentencepiece library itself and rebuilds
the fast tokenizer from the `.model` file when they disagree.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers
from tokenizers.models import Unigram

from .errors import FinetuneError

# Sentences that exercise what usually breaks: rare kanji, emoji, ASCII upper case, full-width
# characters, runs of spaces and newlines. Used for the parity check on every load.
PARITY_PROBES = (
    "これはペンです。これはリンゴです。",
    "ABC 鬱蒼としたPython🙂",
    "全角ＡＢＣ１２３　と半角abc123、カタカナ　ﾊﾝｶｸ",
    "  先頭と末尾の空白   と  連続する空白  ",
    "一行目\n二行目\n\n三行目の「引用」と（括弧）…",
    "麤鸞龘 𠮷野家 ♪☆ — 〜 ① ㈱ ℃",
)

SPM_FILE_NAMES = ("spiece.model", "tokenizer.model", "sentencepiece.bpe.model")


@dataclass
class Parity:
    """How a tokenizer compares with sentencepiece on PARITY_PROBES."""
    status: str  # "ok", "repaired", "mismatch", or "not-applicable" (no sentencepiece model)
    spm_file: str | None = None
    mismatches: list[str] = field(default_factory=list)

    @property
    def trusted(self) -> bool:
        return self.status in ("ok", "repaired", "not-applicable")


def find_spm_file(folder: str | Path) -> Path | None:
    """The sentencepiece model inside a tokenizer folder, if it has one."""
    folder = Path(folder)
    for name in SPM_FILE_NAMES:
        if (folder / name).is_file():
            return folder / name
    return None


def read_lowercase_flag(folder: str | Path) -> bool:
    """`do_lower_case` from tokenizer_config.json (rinna sets it; transformers 5 ignores it)."""
    config = Path(folder) / "tokenizer_config.json"
    if not config.is_file():
        return False
    return bool(json.loads(config.read_text(encoding="utf-8")).get("do_lower_case", False))


def spm_reference_ids(spm_file: str | Path, texts, lowercase: bool) -> list[list[int]]:
    """What the sentencepiece library itself gives: the ground truth for parity."""
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=str(spm_file))
    return [sp.encode(t.lower() if lowercase else t) for t in texts]


def spm_backend(spm_file: str | Path, lowercase: bool) -> Tokenizer:
    """A `tokenizers` Unigram that reproduces sentencepiece: its own unk id, byte fallback and
    normalization rules, plus lower-casing when the model asks for it. No post-processor: nothing
    is appended to encoded text (EOS is added explicitly where it belongs)."""
    from sentencepiece import sentencepiece_model_pb2 as pb
    proto = pb.ModelProto()
    proto.ParseFromString(Path(spm_file).read_bytes())
    if proto.trainer_spec.model_type != pb.TrainerSpec.UNIGRAM:
        raise FinetuneError(f"{spm_file}: only unigram sentencepiece models can be rebuilt")
    vocab = [(p.piece, p.score) for p in proto.pieces]
    backend = Tokenizer(Unigram(vocab, unk_id=proto.trainer_spec.unk_id,
                                byte_fallback=proto.trainer_spec.byte_fallback))
    spec = proto.normalizer_spec
    steps = [normalizers.Lowercase()] if lowercase else []
    if spec.precompiled_charsmap:
        steps.append(normalizers.Precompiled(spec.precompiled_charsmap))
    if spec.remove_extra_whitespaces:
        steps += [normalizers.Strip(left=True, right=True), normalizers.Replace(Regex(" {2,}"), " ")]
    if steps:
        backend.normalizer = normalizers.Sequence(steps)
    prepend = "always" if spec.add_dummy_prefix else "never"
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme=prepend, split=False)
    decode_steps = [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
    if spec.add_dummy_prefix:
        decode_steps.append(decoders.Strip(content=" ", left=1, right=0))
    backend.decoder = decoders.Sequence(decode_steps)
    # User-defined symbols ([CLS], "\n" …) are matched whole, before normalization, as sentencepiece
    # does. They are not special here (so "\n" survives decoding); the tokenizer's own special
    # tokens ([CLS] for rinna) are marked special by the transformers wrapper.
    user = [p.piece for p in proto.pieces if p.type == pb.ModelProto.SentencePiece.USER_DEFINED]
    if user:
        from tokenizers import AddedToken
        backend.add_tokens([AddedToken(u, special=False, normalized=False) for u in user])
    return backend


def check_parity(tokenizer, spm_file: str | Path | None, lowercase: bool) -> Parity:
    """Compare `tokenizer` with sentencepiece on PARITY_PROBES (no special tokens added)."""
    if spm_file is None:
        return Parity("not-applicable")
    expected = spm_reference_ids(spm_file, PARITY_PROBES, lowercase)
    bad = [text for text, ids in zip(PARITY_PROBES, expected)
           if tokenizer.encode(text, add_special_tokens=False) != ids]
    return Parity("ok" if not bad else "mismatch", str(spm_file), bad)


def repaired_tokenizer(tokenizer, spm_file: str | Path, lowercase: bool):
    """A fast tokenizer with the same special tokens as `tokenizer` but a backend rebuilt from the
    sentencepiece model (see `spm_backend`)."""
    from transformers import PreTrainedTokenizerFast
    specials = {k: v for k, v in tokenizer.special_tokens_map.items() if k != "additional_special_tokens"}
    fixed = PreTrainedTokenizerFast(tokenizer_object=spm_backend(spm_file, lowercase),
                                    model_max_length=tokenizer.model_max_length, **specials)
    fixed.name_or_path = tokenizer.name_or_path
    return fixed


def load_tokenizer(source: str, local_files_only: bool = False, revision: str | None = None):
    """Load a tokenizer with AutoTokenizer, then check it against its sentencepiece model and
    repair it if they disagree. Returns (tokenizer, Parity)."""
    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_files_only, revision=revision,
                                              trust_remote_code=False)  # never asks, never runs a repo's code
    folder = tokenizer_folder(source, local_files_only, revision)
    spm_file = find_spm_file(folder) if folder else None
    lowercase = read_lowercase_flag(folder) if folder else False
    parity = check_parity(tokenizer, spm_file, lowercase)
    if parity.status == "mismatch":
        tokenizer = repaired_tokenizer(tokenizer, spm_file, lowercase)
        after = check_parity(tokenizer, spm_file, lowercase)
        parity = Parity("repaired" if after.status == "ok" else "mismatch", str(spm_file), after.mismatches)
    if tokenizer.pad_token is None:
        # Padding only matters for batched generation; reuse EOS as GPT-2 models do.
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer, parity


def tokenizer_folder(source: str, local_files_only: bool, revision: str | None) -> Path | None:
    """The local folder holding the tokenizer files (a Hub snapshot in the cache for Hub ids)."""
    if Path(source).is_dir():
        return Path(source)
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError
    try:
        # AutoTokenizer has just downloaded (or found) these files, so the cache has them.
        return Path(snapshot_download(source, revision=revision, local_files_only=True,
                                      allow_patterns=["*.model", "tokenizer_config.json"]))
    except LocalEntryNotFoundError:
        return None


def encode_prompt(tokenizer, prompt: str) -> list[int]:
    """Token ids for a generation prompt: never with EOS appended (the seed article's bug: a prompt
    ending in `</s>` tells the model the text is over). An empty prompt starts from BOS (or EOS,
    the document separator the model saw in training)."""
    ids = tokenizer.encode(prompt, add_special_tokens=False) if prompt else []
    if not ids:
        start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        ids = [start]
    return ids


def encode_document(tokenizer, text: str) -> list[int]:
    """Token ids of one training document, without any special tokens (packing adds EOS)."""
    return tokenizer.encode(text, add_special_tokens=False)


@dataclass
class TokenSpan:
    """One piece of the input text and the token(s) that cover it. Byte-fallback tokens that spell
    one character together are grouped into one span."""
    text: str
    tokens: list[str]
    ids: list[int]
    kind: str  # "word" (starts with ▁), "piece", "byte", "unk", "special"


@dataclass
class TokenView:
    """What the tokenizer view shows for one text."""
    spans: list[TokenSpan]
    ids: list[int]
    tokens: list[str]
    characters: int

    @property
    def count(self) -> int:
        return len(self.ids)

    @property
    def chars_per_token(self) -> float:
        return round(self.characters / self.count, 2) if self.count else 0.0


def span_kind(tokenizer, token: str, token_id: int) -> str:
    """The colour class of one token."""
    if token_id == tokenizer.unk_token_id:
        return "unk"
    if token_id in tokenizer.all_special_ids:
        return "special"
    if token.startswith("<0x") and token.endswith(">") and len(token) == 6:
        return "byte"
    return "word" if token.startswith("▁") else "piece"


def utf8_length(lead: int) -> int:
    """Bytes in the UTF-8 sequence that starts with byte `lead`."""
    return 1 if lead < 0xC0 else 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4


def byte_spans(tokens: list[str], ids: list[int]) -> list[TokenSpan]:
    """A run of byte-fallback tokens as one span per character they spell. (The tokenizer gives a
    run of unknown characters a single offset range, so offsets cannot split it.)"""
    values = [int(tok[3:5], 16) for tok in tokens]
    spans, i = [], 0
    while i < len(values):
        n = utf8_length(values[i])
        char = bytes(values[i:i + n]).decode("utf-8", errors="replace")
        spans.append(TokenSpan(char, tokens[i:i + n], ids[i:i + n], "byte"))
        i += n
    return spans


def token_view(tokenizer, text: str) -> TokenView:
    """Tokens, ids and the exact text span of each token (no special tokens added)."""
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    tokens = tokenizer.convert_ids_to_tokens(ids)
    spans: list[TokenSpan] = []
    i = 0
    while i < len(ids):
        kind = span_kind(tokenizer, tokens[i], ids[i])
        if kind == "byte":
            j = i
            while j < len(ids) and span_kind(tokenizer, tokens[j], ids[j]) == "byte":
                j += 1
            spans += byte_spans(tokens[i:j], ids[i:j])
            i = j
            continue
        start, end = offsets[i]
        covered = text[start:end]
        if tokens[i] == "▁" and covered.strip():
            # A lone word-start marker (sentencepiece's dummy prefix before a word it spells with
            # other pieces) is given the next character's offsets; it covers no text of its own.
            covered = ""
        spans.append(TokenSpan(covered, [tokens[i]], [ids[i]], kind))
        i += 1
    return TokenView(spans, list(ids), tokens, len(text))
