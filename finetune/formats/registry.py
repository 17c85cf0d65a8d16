"""One input's bytes to documents: size and binary checks, decoding, then the first reader of the
registry that takes the text."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath

from ..document import Document
from .aozora import aozora_documents, looks_like_aozora
from .blogs import (atom_documents, looks_like_atom, looks_like_medium, looks_like_movable_type, looks_like_wxr,
                    medium_documents, movable_type_documents, wxr_documents)
from .common import (MB, FileReport, FileResult, ReadOptions, Skip, count_documents, left_out_message, message,
                     several_authors_message, text_documents, unified_newlines)
from .encodings import binary_kind, decoded_text
from .html import html_documents
from .records import csv_documents, json_documents, jsonl_documents
from .text import looks_like_post, markdown_documents, markdown_post_documents

SUFFIX_FORMATS = {
    ".txt": "text", ".text": "text",
    ".md": "markdown", ".markdown": "markdown",
    ".html": "html", ".htm": "html", ".xhtml": "html",
    ".jsonl": "jsonl", ".ndjson": "jsonl",
    ".json": "json",
    ".csv": "csv", ".tsv": "csv",
    ".xml": "xml", ".atom": "xml", ".rss": "xml",
}
ACCEPTED = ".txt .md .html .htm .xml .atom .jsonl .json .csv .tsv .zip, and blog exports by their content"


@dataclass(frozen=True)
class Reader:
    """One format. `takes(text, report)` says whether this reader reads the decoded text (the report's
    format is, until then, the one the file name suggests); `read(text, name, options, report)` gives
    its documents, or raises Skip."""
    format: str
    takes: Callable[[str, FileReport], bool]
    read: Callable[[str, str, ReadOptions, FileReport], list[Document]]


def named(fmt: str) -> Callable[[str, FileReport], bool]:
    """A `takes` for formats known by the file name only."""
    return lambda text, report: report.format == fmt


def not_an_export(text: str, name: str, options: ReadOptions, report: FileReport) -> list[Document]:
    raise Skip(message("not_an_export"))


# Tried in order; the first that takes the text reads it. Exports first, by their content whatever the
# file name (Hatena's export is a .txt, WordPress's an .xml); then the formats named by the suffix.
READERS = (
    Reader("movable-type", looks_like_movable_type, movable_type_documents),
    Reader("wordpress", looks_like_wxr, wxr_documents),
    Reader("atom", looks_like_atom, atom_documents),
    Reader("medium", looks_like_medium, medium_documents),
    Reader("markdown", looks_like_post, markdown_post_documents),
    Reader("jsonl", named("jsonl"), jsonl_documents),
    Reader("json", named("json"), json_documents),
    Reader("csv", named("csv"), csv_documents),
    Reader("xml", named("xml"), not_an_export),
    Reader("html", named("html"), html_documents),
    Reader("markdown", named("markdown"), markdown_documents),
    Reader("aozora", lambda text, report: report.format == "text" and looks_like_aozora(text), aozora_documents),
    Reader("text", named("text"), text_documents),
)
BOM = "\ufeff"
# Readers that may take a file whose suffix names no format (an export saved under any name).
BY_CONTENT = ("movable-type", "wordpress", "atom")


def reader_for(text: str, report: FileReport) -> Reader | None:
    return next((r for r in READERS if r.takes(text, report)), None)


def file_format(name: str) -> str | None:
    """The format the file name suggests (None for an unknown suffix)."""
    return SUFFIX_FORMATS.get(PurePosixPath(name.lower()).suffix)


def bytes_result(name: str, raw: bytes, options: ReadOptions, fmt: str | None = None) -> FileResult:
    """Read one file's bytes. `fmt` overrides the format implied by the name."""
    report = FileReport(name, fmt or file_format(name) or "unknown")
    try:
        docs = bytes_documents(name, raw, options, report, fmt)
    except Skip as skip:
        report.skip(skip.message)
        return FileResult(report)
    count_documents(report, docs)
    return FileResult(report, docs)


def bytes_documents(name: str, raw: bytes, options: ReadOptions, report: FileReport, fmt: str | None) -> list[Document]:
    if not raw:
        raise Skip(message("empty"))
    if len(raw) > options.max_file_mb * MB:
        raise Skip(message("too_large", size=len(raw) / MB, limit=options.max_file_mb))
    kind = binary_kind(raw)
    if kind:
        report.format = "binary"
        raise Skip(message("binary", kind=kind[0], kind_ja=kind[1]))
    text, report.encoding = decoded_text_of(name, raw, options, report)
    text = text.removeprefix(BOM)  # kept by an explicit --encoding utf-8; it would hide a header or front matter
    if not text.strip():
        raise Skip(message("blank"))
    docs = text_format_documents(unified_newlines(text), name, options, report)
    for doc in docs:
        doc.encoding = report.encoding
    if report.left_out:
        if not docs:
            raise Skip(left_out_message(report, "only_left_out"))
        report.warn(left_out_message(report, "left_out"))
    if len(report.authors) > 1 and not options.authors:   # a team blog: say whose posts these are
        report.warn(several_authors_message(report))
    if not docs:
        stripped = ", ".join(report.stripped) or "only markup"
        raise Skip(message("nothing_left", what=stripped, what_ja=f"除いたもの：{stripped}"))
    replaced = report.stripped.get("replacement_characters", 0)
    if replaced:
        report.warn(message("replacement_removed", count=replaced))
    return docs


def decoded_text_of(name: str, raw: bytes, options: ReadOptions, report: FileReport) -> tuple[str, str]:
    """The file's text and encoding. A file whose suffix names no format is read only when it is an
    export (by its content); otherwise, and when it cannot be decoded, it is an unsupported type."""
    if report.format != "unknown":
        return decoded_text(raw, options.encoding_for(name))
    unsupported = Skip(message("unsupported", suffix=PurePosixPath(name).suffix or "(no extension)",
                               accepted=ACCEPTED))
    try:
        text, encoding = decoded_text(raw, options.encoding_for(name))
    except Skip:
        raise unsupported from None
    reader = reader_for(unified_newlines(text.removeprefix(BOM)), report)
    if reader is None or reader.format not in BY_CONTENT:
        raise unsupported
    return text, encoding


def text_format_documents(text: str, name: str, options: ReadOptions, report: FileReport) -> list[Document]:
    """The documents of a decoded text, read by the first reader that takes it."""
    reader = reader_for(text, report)
    if reader is None:
        suffix = PurePosixPath(name).suffix or "(no extension)"
        raise Skip(message("unsupported", suffix=suffix, accepted=ACCEPTED))
    report.format = reader.format
    return reader.read(text, name, options, report)


def pasted_result(text: str, name: str, options: ReadOptions) -> FileResult:
    """Pasted text: plain text (Aozora-style markup is cleaned as in files)."""
    result = bytes_result(name, text.encode("utf-8"), options, fmt="text")
    result.report.encoding = None  # pasted text has no encoding of its own
    return result


