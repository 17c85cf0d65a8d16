"""Files a long-running front end keeps for its users: staged inputs and exported zips.

Uploaded files live in temporary places that vanish with the page, and pasted text is no file at
all. `staged_inputs` copies both into a folder named after their content, so training, the shown
CLI command and a later rerun all read the same files. A folder is written once and never changed:
a run reading it cannot see it change underneath.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from .errors import DataError

PASTED_NAME = "pasted.txt"


def inputs_digest(files, pasted: str) -> str:
    """A short hash of the inputs' names and contents."""
    h = hashlib.sha256()
    for path in map(Path, files):
        h.update(path.name.encode("utf-8") + b"\0")
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        h.update(b"\0")
    h.update(pasted.encode("utf-8"))
    return h.hexdigest()[:16]


def unique_name(taken: set[str], name: str) -> str:
    """`name`, or `name-2.ext`, `name-3.ext` … when two uploads share a file name."""
    stem, suffix, n = Path(name).stem, Path(name).suffix, 1
    while name in taken:
        n += 1
        name = f"{stem}-{n}{suffix}"
    taken.add(name)
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
        shutil.copyfile(path, building / unique_name(taken, path.name))
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
