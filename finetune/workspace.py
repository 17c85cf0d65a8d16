"""Files a long-running front end keeps for its users: staged inputs and exported zips.

Uploaded files live in temporary places that vanish with the page, and pasted text is no file at
all. `staged_inputs` copies both into a folder named after their content, so training, the shown
CLI command and a later rerun all read the same files. A folder is written once and never changed:
a run reading it cannot see it change underneath.

Uploaded names are the visitor's: each copy gets `safe_name`, a name that stays inside the folder
and that every file system accepts, with its extension and its Japanese kept.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import unicodedata
from pathlib import Path

from .errors import DataError

PASTED_NAME = "pasted.txt"
FALLBACK_STEM = "upload"
MAX_NAME_BYTES = 200     # UTF-8 bytes; file systems allow 255, the rest is room for "-2" and the like
MAX_SUFFIX_BYTES = 16    # a longer "extension" is part of the name
DROPPED = {"Cc", "Cf", "Zl", "Zp"}  # control (NUL, newlines), invisible format (e.g. right-to-left override)
UNREADABLE = {"Cc", "Co", "Cn", "Cs"}


def inputs_digest(files, pasted: str) -> str:
    """A short hash of the inputs' names and contents."""
    h = hashlib.sha256()
    for path in map(Path, files):
        h.update(os.fsencode(path.name) + b"\0")  # bytes: a name need not be valid UTF-8
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        h.update(b"\0")
    h.update(pasted.encode("utf-8"))
    return h.hexdigest()[:16]


def readable(name: str) -> str:
    """`name` with bytes that were not UTF-8 (Python keeps them as lone surrogates) decoded as
    Shift_JIS/CP932 when that gives readable text (Japanese Windows names), else replaced by "_"."""
    if not any(unicodedata.category(c) == "Cs" for c in name):
        return name
    raw = name.encode("utf-8", "surrogateescape")
    try:
        decoded = raw.decode("cp932")
    except UnicodeDecodeError:
        decoded = ""
    if decoded and not any(unicodedata.category(c) in UNREADABLE for c in decoded):
        return decoded
    return "".join("_" if unicodedata.category(c) == "Cs" else c for c in name)


def split_suffix(name: str) -> tuple[str, str]:
    """(stem, ".ext"); no suffix when the part after the last dot is empty, too long or spaced."""
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or not ext or " " in ext or len(ext.encode("utf-8")) > MAX_SUFFIX_BYTES:
        return name, ""
    return stem, "." + ext


def fitted(stem: str, suffix: str, limit: int = MAX_NAME_BYTES) -> str:
    """stem + suffix in at most `limit` UTF-8 bytes: the stem is cut, on a character boundary."""
    room = max(0, limit - len(suffix.encode("utf-8")))
    return stem.encode("utf-8")[:room].decode("utf-8", "ignore") + suffix


def safe_name(name: str) -> str:
    """A file name for an upload called `name` that stays inside the folder it is written to: the
    last part of any path (/ or \\), readable (see `readable`), NFC (macOS sends kana decomposed),
    without control or invisible characters, without leading dots (no "..", no hidden files) or
    trailing dots and spaces, and at most MAX_NAME_BYTES in UTF-8, keeping the extension."""
    name = re.split(r"[/\\]", readable(name))[-1]
    name = unicodedata.normalize("NFC", name)
    name = "".join(c for c in name if unicodedata.category(c) not in DROPPED)
    name = name.strip().lstrip(".").rstrip(". ")
    stem, suffix = split_suffix(name)
    return fitted(stem.strip() or FALLBACK_STEM, suffix)


def unique_name(taken: set[str], name: str) -> str:
    """`name`, or `name-2.ext`, `name-3.ext` … when two uploads share a file name (ignoring case,
    as some file systems do); still at most MAX_NAME_BYTES."""
    stem, suffix = split_suffix(name)
    n = 1
    while name.casefold() in taken:
        n += 1
        name = fitted(stem, f"-{n}{suffix}")
    taken.add(name.casefold())
    return name


def staged_inputs(root: str | Path, files=(), pasted: str = "") -> Path:
    """The folder under `root` holding copies of `files` plus `pasted` (as pasted.txt)."""
    files = [f for f in (files or []) if f]
    pasted = pasted or ""
    if not files and not pasted.strip():
        raise DataError("no text given: upload files or paste text")
    root = Path(root)
    folder = root / inputs_digest(files, pasted)
    if folder.is_dir():
        return folder
    root.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=".staging-", dir=root))
    taken = {PASTED_NAME} if pasted.strip() else set()
    for path in map(Path, files):
        shutil.copyfile(path, building / unique_name(taken, safe_name(path.name)))
    if pasted.strip():
        (building / PASTED_NAME).write_text(pasted, encoding="utf-8")
    try:
        os.replace(building, folder)
    except OSError:  # the same inputs were staged meanwhile by another request
        shutil.rmtree(building, ignore_errors=True)
    return folder


def export_path(root: str | Path, model_dir: str | Path) -> Path:
    """Where the zip of a run folder goes."""
    return Path(root) / f"{Path(model_dir).name}.zip"
