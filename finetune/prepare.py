"""Check the user's text before training: what was read from each file, what was cleaned away, and
what training would see (documents, tokens, blocks, the held-out part, a preview of packed blocks).

`prepare(settings)` reads with finetune.formats and packs with finetune.data.build_dataset, exactly
as training does, so its numbers are the ones training will use. The report is plain data: the CLI
prints `to_text()` or `to_dict()`, the studio shows the same fields (Japanese reasons included).
`settings.dump` (or `write_dump`) writes the very document list that is packed, one JSON line each.
"""
from __future__ import annotations

import codecs
import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from .data import IGNORE, Dataset, Document, build_dataset, encode_example
from .errors import DataError, FinetuneError
from .formats import FileReport, FileResult, ReadOptions, encoding_label, ranked_authors, read_inputs, skip_summary
from .models import DEFAULT_BASE


@dataclass
class PrepareSettings:
    """What to read and how; the CLI flags and the studio's fields map onto these."""
    data: list[str] = field(default_factory=list, metadata={
        "help": "files, folders or .zip archives (.txt .md .html .htm .xml .atom .jsonl .json .csv .tsv), blog "
                "exports included (Hatena/Movable Type, WordPress/note, Blogger, Medium, Hugo/Jekyll/Zenn/Qiita Markdown)"})
    texts: list[str] = field(default_factory=list, metadata={"help": "pasted texts, one document each"})
    model: str = field(default=DEFAULT_BASE, metadata={"help": "model whose tokenizer counts the tokens"})
    block_size: int = field(default=128, metadata={"help": "tokens per training block (as in training)"})
    heldout: float = field(default=0.1, metadata={"help": "share of the text held out to measure the result"})
    seed: int = field(default=42, metadata={"help": "seed of the held-out split (as in training)"})
    nfkc: bool = field(default=ReadOptions.nfkc, metadata={
        "help": "Unicode NFKC normalization (full-width ASCII to half-width, half-width kana to full-width)"})
    keep_code: bool = field(default=ReadOptions.keep_code, metadata={
        "help": "keep code blocks (Markdown fences, HTML <pre>, highlight shortcodes)"})
    include_drafts: bool = field(default=ReadOptions.include_drafts, metadata={
        "help": "blog exports: use drafts and unpublished posts too"})
    include_comments: bool = field(default=ReadOptions.include_comments, metadata={
        "help": "blog exports: use readers' approved comments too, one document each"})
    authors: list[str] = field(default_factory=list, metadata={
        "help": "blog exports: only these authors' posts (a name as the export gives it: Movable Type/Hatena "
                "AUTHOR, WordPress login or display name, Blogger author, Markdown author; case and full-width "
                "letters do not matter); posts that name no author are kept; none given: everyone's"})
    titles: bool = field(default=ReadOptions.titles, metadata={
        "help": "put each post's title as the first line of its document"})
    encoding: str = field(default=ReadOptions.encoding, metadata={
        "help": "encoding of every file, or auto to detect it per file"})
    encodings: dict[str, str] = field(default_factory=dict, metadata={
        "help": "per-file encodings: file name (or path) -> encoding, overriding detection"})
    max_file_mb: float = field(default=ReadOptions.max_file_mb, metadata={"help": "largest file read, in MB"})
    max_zip_mb: float = field(default=ReadOptions.max_zip_mb, metadata={
        "help": "largest total a zip may expand to, in MB (nested zips included)"})
    preview: int = field(default=3, metadata={"help": "documents and blocks shown in the preview"})
    preview_chars: int = field(default=300, metadata={"help": "characters shown per previewed document"})
    dump: str = field(default="", metadata={
        "help": "write the cleaned documents, exactly as they are packed, to this .jsonl file"})

    def __post_init__(self):
        self.data = [str(p) for p in ([self.data] if isinstance(self.data, str) else self.data)]
        self.texts = [self.texts] if isinstance(self.texts, str) else list(self.texts)
        self.authors = [self.authors] if isinstance(self.authors, str) else list(self.authors)
        if not self.data and not any(t.strip() for t in self.texts):
            raise ValueError("give at least one file, folder, zip or pasted text")
        if self.block_size < 8:
            raise ValueError(f"block size must be at least 8 tokens, got {self.block_size}")
        if not 0 <= self.heldout < 0.9:
            raise ValueError(f"held-out share must be in [0, 0.9), got {self.heldout}")
        for name, encoding in [("*", self.encoding), *self.encodings.items()]:
            if encoding != "auto" or name != "*":
                check_encoding(encoding)
        if self.max_file_mb <= 0 or self.max_zip_mb <= 0:
            raise ValueError("size limits must be positive")
        if self.preview < 0 or self.preview_chars < 1:
            raise ValueError("preview counts must be positive")
        self.authors = list(self.read_options().authors)   # stripped; a blank name is refused (ValueError)
        if self.dump and Path(self.dump).is_dir():
            raise ValueError(f"the dump file {self.dump} is a folder")

    def read_options(self) -> ReadOptions:
        return ReadOptions(nfkc=self.nfkc, keep_code=self.keep_code, include_drafts=self.include_drafts,
                           include_comments=self.include_comments, authors=tuple(self.authors), titles=self.titles,
                           encoding=self.encoding, encodings=dict(self.encodings), max_file_mb=self.max_file_mb,
                           max_zip_mb=self.max_zip_mb)


def check_encoding(encoding: str):
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise ValueError(f"unknown encoding {encoding!r} (e.g. utf-8, cp932, euc-jp, iso-2022-jp)") from None


def setting_help(name: str) -> str:
    """The help text of one PrepareSettings field (for CLI flags and UI labels)."""
    return next(f.metadata.get("help", "") for f in fields(PrepareSettings) if f.name == name)


@dataclass
class Totals:
    """Numbers over everything that was used. Token counts are None when no tokenizer was available
    or the text was too short to pack."""
    files: int = 0
    used_files: int = 0
    skipped_files: int = 0
    documents: int = 0
    qa_pairs: int = 0
    posts: int = 0                        # blog posts among the documents
    comments: int = 0                     # readers' comments among them (include_comments)
    left_out: dict[str, int] = field(default_factory=dict)  # export entries not used, by reason
    characters: int = 0
    duplicates: int = 0
    block_size: int = 0
    heldout_share: float = 0.0            # the requested share
    tokens: int | None = None             # all tokens, one EOS per document included
    train_tokens: int | None = None
    heldout_tokens: int | None = None
    train_blocks: int | None = None
    heldout_blocks: int | None = None
    dropped_tokens: int | None = None     # tails shorter than a block


@dataclass
class DocumentPreview:
    name: str
    prompt: str      # the templated question of a Q&A pair, else ""
    text: str        # cut to preview_chars, with "…" when cut
    characters: int


@dataclass
class BlockPreview:
    """One packed training block decoded back to text. In Q&A blocks the masked tokens (the
    questions, label -100) are wrapped in ⟦ ⟧."""
    index: int
    text: str
    tokens: int
    masked_tokens: int


@dataclass
class PrepareReport:
    files: list[FileReport]
    totals: Totals
    model: str
    documents_preview: list[DocumentPreview] = field(default_factory=list)
    blocks_preview: list[BlockPreview] = field(default_factory=list)
    error: str = ""             # why nothing can be trained on (English, one line)
    error_ja: str = ""
    tokenizer_error: str = ""   # token counts are missing because the tokenizer did not load
    dump_file: str = ""         # where the documents were written (settings.dump), else ""
    documents: list[Document] = field(default_factory=list, repr=False)  # for training; not in to_dict
    dataset: Dataset | None = field(default=None, repr=False)            # for training; not in to_dict

    @property
    def usable(self) -> bool:
        return not self.error

    def to_dict(self) -> dict:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("documents", "dataset")}
        data = {k: asdict(v) if hasattr(v, "__dataclass_fields__") else v for k, v in data.items()}
        for key in ("files", "documents_preview", "blocks_preview"):
            data[key] = [asdict(x) for x in data[key]]
        data["usable"] = self.usable
        return data

    def to_text(self) -> str:
        return "\n".join(report_lines(self))


def prepare(settings: PrepareSettings, tokenizer=None, progress=None) -> PrepareReport:
    """Read, clean and pack the inputs as training would, and report on every step. `tokenizer`
    (optional) saves loading the one of `settings.model` again; `progress(done, total)` follows the
    tokenization in characters (finetune.data.build_dataset)."""
    results = read_inputs(settings.data, settings.texts, settings.read_options())
    docs = [d for r in results for d in r.documents]  # the one list that is dumped, previewed and packed
    report = PrepareReport(files=[r.report for r in results], totals=file_totals(results, settings),
                           model=settings.model, documents_preview=document_previews(docs, settings),
                           documents=docs)
    if settings.dump:
        report.dump_file = str(write_dump(docs, settings.dump))
    if not docs:
        report.error, report.error_ja = nothing_usable(results)
        return report
    if tokenizer is None:
        tokenizer, report.tokenizer_error = loaded_tokenizer(settings.model)
        if tokenizer is None:
            return report
    try:
        report.dataset = build_dataset(docs, tokenizer, settings.block_size, settings.heldout, settings.seed,
                                       progress)
    except DataError as err:
        report.error, report.error_ja = too_short(docs, tokenizer, settings, str(err))
        return report
    add_token_totals(report.totals, report.dataset)
    report.blocks_preview = block_previews(report.dataset, tokenizer, settings.preview)
    return report


def dump_record(doc: Document) -> dict:
    """One document as the dump shows it: `source` (file, #entry for exports and records), `title`,
    `date` where known, `prompt` for Q&A pairs (masked in training), and `text`: prompt + text is
    exactly what is tokenized, followed by one EOS."""
    record = {"source": doc.name, "title": doc.title}
    if doc.date:
        record["date"] = doc.date
    if doc.prompt:
        record["prompt"] = doc.prompt
    record["text"] = doc.text
    return record


def write_dump(docs: list[Document], path) -> Path:
    """Write the documents, one JSON line each (UTF-8, Japanese unescaped), in packing order."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as f:
        for doc in docs:
            f.write(json.dumps(dump_record(doc), ensure_ascii=False) + "\n")
    return path


def file_totals(results: list[FileResult], settings: PrepareSettings) -> Totals:
    reports = [r.report for r in results]
    return Totals(files=len(reports), used_files=sum(r.used for r in reports),
                  skipped_files=sum(not r.used for r in reports),
                  documents=sum(len(r.documents) for r in results),
                  qa_pairs=sum(1 for r in results for d in r.documents if d.prompt),
                  posts=sum(r.posts for r in reports), comments=sum(r.comments for r in reports),
                  left_out=summed(r.left_out for r in reports),
                  characters=sum(r.characters for r in reports if r.used),
                  duplicates=sum(r.stripped.get("duplicates", 0) for r in reports),
                  block_size=settings.block_size, heldout_share=settings.heldout)


def summed(counts) -> dict[str, int]:
    total: dict[str, int] = {}
    for count in counts:
        for key, n in count.items():
            total[key] = total.get(key, 0) + n
    return total


def add_token_totals(totals: Totals, dataset: Dataset):
    totals.train_tokens = dataset.train_tokens
    totals.heldout_tokens = dataset.heldout_tokens
    totals.dropped_tokens = dataset.dropped_tokens
    totals.tokens = dataset.train_tokens + dataset.heldout_tokens + dataset.dropped_tokens
    totals.train_blocks = len(dataset.train_blocks)
    totals.heldout_blocks = len(dataset.heldout_blocks)


def loaded_tokenizer(model: str):
    """(tokenizer, "") or (None, why it could not be loaded)."""
    from .models import load_tokenizer_for, resolve_source
    try:
        tokenizer, _ = load_tokenizer_for(resolve_source(model))
    except FinetuneError as err:
        return None, str(err)
    return tokenizer, ""


def nothing_usable(results: list[FileResult]) -> tuple[str, str]:
    if not results:
        return "no text given", "テキストが指定されていません"
    skipped = [r.report for r in results if not r.report.used][:5]
    ja = "；".join(f"{r.name}：{r.reason_ja}" for r in skipped)
    return f"nothing usable: {skip_summary(results)}", f"使えるテキストがありません：{ja}"


def needed_tokens(block_size: int, heldout: float) -> int:
    """The fewest tokens that give one training block plus the held-out part (see data.split_heldout)."""
    if heldout <= 0:
        return block_size
    total = max(2 * block_size, math.ceil(block_size / (1 - heldout)))
    while total - max(math.ceil(total * heldout), block_size) < block_size:
        total += 1
    return total


def too_short(docs: list[Document], tokenizer, settings: PrepareSettings, fallback: str) -> tuple[str, str]:
    """How much text is missing for one block, in tokens and (roughly) characters."""
    tokens = sum(len(encode_example(tokenizer, d)) + 1 for d in docs)
    needed = needed_tokens(settings.block_size, settings.heldout)
    if tokens >= needed:
        return fallback, fallback
    missing = needed - tokens
    characters = sum(len(d.prompt) + len(d.text) for d in docs)
    missing_chars = math.ceil(missing * characters / max(tokens, 1))
    held = f" plus a {settings.heldout:.0%} held-out part" if settings.heldout > 0 else ""
    en = (f"the text is too short to make one {settings.block_size}-token training block{held}: it has {tokens} "
          f"tokens and {needed} are needed; add about {missing} tokens (about {missing_chars} characters), "
          "or lower the block size or the held-out share")
    ja = (f"テキストが短すぎて{settings.block_size}トークンの学習ブロックを作れません：{tokens}トークンあり、"
          f"{needed}トークン必要です。あと約{missing}トークン（約{missing_chars}文字）追加するか、"
          "ブロックサイズか検証用の割合を下げてください")
    return en, ja


def document_previews(docs: list[Document], settings: PrepareSettings) -> list[DocumentPreview]:
    def cut(text: str) -> str:
        return text if len(text) <= settings.preview_chars else text[:settings.preview_chars] + "…"
    return [DocumentPreview(d.name, d.prompt, cut(d.text), len(d.text)) for d in docs[:settings.preview]]


def block_previews(dataset: Dataset, tokenizer, count: int) -> list[BlockPreview]:
    previews = []
    for i in range(min(count, len(dataset.train_blocks))):
        ids = dataset.train_blocks[i].tolist()
        labels = dataset.train_labels[i].tolist() if dataset.train_labels is not None else None
        masked = sum(1 for x in labels if x == IGNORE) if labels else 0
        previews.append(BlockPreview(i, block_text(tokenizer, ids, labels), len(ids), masked))
    return previews


def block_text(tokenizer, ids: list[int], labels: list[int] | None) -> str:
    """A block decoded with its special tokens (EOS shows document boundaries); masked runs in ⟦ ⟧.
    Runs are decoded separately: masking starts and ends where separately encoded texts meet."""
    if not labels:
        return without_cut_characters(tokenizer.decode(ids, skip_special_tokens=False))
    pieces, start = [], 0
    for end in range(1, len(ids) + 1):
        if end == len(ids) or (labels[end] == IGNORE) != (labels[start] == IGNORE):
            text = tokenizer.decode(ids[start:end], skip_special_tokens=False)
            pieces.append(f"⟦{text}⟧" if labels[start] == IGNORE else text)
            start = end
    return without_cut_characters("".join(pieces))


def without_cut_characters(text: str) -> str:
    """A block edge can fall inside a character spelled by byte-fallback tokens; its half decodes
    to U+FFFD at the start or end of the block. The preview leaves those halves out."""
    return text.strip("\ufffd")


# ----------------------------------------------------------------------------------------------
# Text output


def report_lines(report: PrepareReport) -> list[str]:
    t = report.totals
    lines = [f"files: {t.used_files} used, {t.skipped_files} skipped"]
    width = max((len(f.name) for f in report.files), default=0)
    for f in report.files:
        lines.append(f"  {f.outcome:<8} {f.name:<{width}}  {file_summary(f)}")
        if len(f.authors) > 1 or "other_author" in f.left_out:
            lines.append(f"  {'':<8} {'':<{width}}  authors: {authors_line(f)}")
        lines += [f"  {'':<8} {'':<{width}}  warning: {w}" for w in f.warnings]
    lines.append("totals:")
    lines.append(f"  {plural(t.documents, 'document')} ({plural(t.qa_pairs, 'Q&A pair')}), "
                 f"{plural(t.characters, 'character')}, {plural(t.duplicates, 'duplicate')} dropped")
    if t.posts or t.left_out:
        lines.append(f"  blog posts: {plural(t.posts, 'post')} and {plural(t.comments, 'comment')} used; left out: "
                     + (", ".join(f"{k.replace('_', ' ')} {v}" for k, v in t.left_out.items()) or "nothing"))
    if t.tokens is not None:
        lines.append(f"  {plural(t.tokens, 'token')} with {report.model}: {plural(t.train_blocks, 'training block')} "
                     f"and {plural(t.heldout_blocks, 'held-out block')} of {t.block_size} tokens (held-out share "
                     f"{t.heldout_share:.0%}), {plural(t.dropped_tokens, 'token')} dropped")
    elif report.tokenizer_error:
        lines.append(f"  tokens: not counted, the tokenizer did not load ({report.tokenizer_error})")
    if report.documents_preview:
        lines.append("preview of the cleaned documents:")
        for d in report.documents_preview:
            lines.append(f"  [{d.name}] ({d.characters} characters)")
            lines += [f"    {line}" for line in (d.prompt + d.text).split("\n")]
    if report.blocks_preview:
        masked = any(b.masked_tokens for b in report.blocks_preview)
        lines.append("preview of the packed training blocks" + (" (⟦…⟧: masked, not learned)" if masked else "") + ":")
        for b in report.blocks_preview:
            lines.append(f"  block {b.index} ({b.tokens} tokens, {b.masked_tokens} masked)")
            lines += [f"    {line}" for line in b.text.split("\n")]
    if report.dump_file:
        lines.append(f"documents written to {report.dump_file}")
    if report.error:
        lines.append(f"not usable: {report.error}")
    return lines


def file_summary(f: FileReport) -> str:
    if not f.used:
        return f"{f.format}: {f.reason}"
    parts = [f.format]
    if f.encoding:
        parts.append(encoding_label(f.encoding))
    parts.append(plural(f.documents, "document") + (f" ({f.qa_pairs} Q&A)" if f.qa_pairs else "")
                 + (f" ({plural(f.posts, 'post')}, {plural(f.comments, 'comment')})" if f.posts or f.comments else ""))
    parts.append(plural(f.characters, "character"))
    text = ", ".join(parts)
    if f.stripped:
        text += "; stripped: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in f.stripped.items())
    return text


def authors_line(f: FileReport) -> str:
    """A file's posts per author, most first: "yama 12, tanaka 3"."""
    return ", ".join(f"{name} {n}" for name, n in ranked_authors(f))


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"
