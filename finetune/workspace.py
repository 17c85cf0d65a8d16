"""Files a long-running front end keeps for its users: staged inputs, runs and exported zips, who
owns them, and how long they are kept.

Uploaded files live in temporary places that vanish with the page, and pasted text is no file at
all. `staged_inputs` copies both into a folder named after their content, so training, the shown
CLI command and a later rerun all read the same files. A folder is written once and never changed:
a run reading it cannot see it change underneath.

Uploaded names are the visitor's: each copy gets `safe_name`, a name that stays inside the folder
and that every file system accepts, with its extension and its Japanese kept.

Owners. A shared front end (the studio on a public Space) keeps each visitor's files in folders of
their own: runs/<owner>/, uploads/<owner>/, exports/<owner>/. The <owner> name is a keyed hash
(`owner_folder`) of who they are, so it can be neither guessed nor derived from a user name. Its
prefix says what kind of owner it is: "u-" a signed-in user, whose runs stay until they delete
them; "a-" an anonymous visitor, whose files are deleted `retention` after they last changed
(`expired`). When the work folder grows past its limit the oldest deletable files go first
(`over_limit`). A single local user has no owner folders at all: the front end uses the work
folder's runs/, uploads/ and exports/ themselves, and nothing is ever deleted for them.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import shutil
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from .errors import DataError, FinetuneError

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


# ---------------------------------------------------------------------------------------------
# Owners and how long their files are kept

KINDS = ("runs", "uploads", "exports")   # the work folder's subfolders, each with one folder per owner
SIGNED_IN, ANONYMOUS = "u-", "a-"         # owner folder prefixes
SECRET_FILE = ".secret"


class NoSuchRun(FinetuneError):
    """The run named is not one of the caller's: it never existed, was deleted, or is someone else's
    (all three say the same, so that nobody learns which runs others have)."""


def no_such_run(name) -> NoSuchRun:
    return NoSuchRun(f"there is no run {Path(str(name)).name!r} (it may have been deleted)")


def server_secret(root: str | Path) -> bytes:
    """The work folder's own random key (kept in root/.secret, readable by this user only), made on
    first use. It keys owner folder names, so it must outlive restarts as the folders do."""
    path = Path(root) / SECRET_FILE
    if not path.is_file():
        Path(root).mkdir(parents=True, exist_ok=True)
        fd = os.open(path.with_suffix(".new"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
        os.replace(path.with_suffix(".new"), path)
    return bytes.fromhex(path.read_text().strip())


def owner_folder(secret: bytes, identity: str, signed_in: bool) -> str:
    """The folder name of one owner: their kind's prefix and a keyed hash of `identity`."""
    digest = hmac.new(secret, identity.encode("utf-8"), hashlib.sha256).hexdigest()[:32]
    return (SIGNED_IN if signed_in else ANONYMOUS) + digest


@dataclass(frozen=True)
class Stored:
    """One upload, run or zip of one owner."""
    path: Path
    kind: str            # "runs", "uploads" or "exports"
    owner: str           # its owner's folder name
    changed: float       # when anything in it last changed (seconds since the epoch)
    size: int            # bytes

    @property
    def deletable(self) -> bool:
        """May it go without the owner asking? Everything of an anonymous visitor; zips of anyone
        (they are copies, made again with one click). Signed-in users' runs and uploads stay."""
        return self.owner.startswith(ANONYMOUS) or self.kind == "exports"


def tree_stats(path: Path) -> tuple[float, int]:
    """(newest modification time, total bytes) of a file or a folder's whole tree."""
    if path.is_file():
        info = path.stat()
        return info.st_mtime, info.st_size
    newest, size = path.stat().st_mtime, 0
    for root, _, names in os.walk(path):
        for name in names:
            try:
                info = os.stat(os.path.join(root, name))
            except FileNotFoundError:  # removed while we looked (a checkpoint being replaced)
                continue
            newest, size = max(newest, info.st_mtime), size + info.st_size
    return newest, size


def stored(root: str | Path) -> list[Stored]:
    """Every owner's uploads, runs and zips under `root`, oldest first."""
    found = []
    for kind in KINDS:
        for owner in sorted(Path(root, kind).glob(f"[{SIGNED_IN[0]}{ANONYMOUS[0]}]-*")):
            for path in owner.iterdir():
                if path.name.startswith(".staging-"):  # being written right now
                    continue
                try:
                    changed, size = tree_stats(path)
                except FileNotFoundError:
                    continue
                found.append(Stored(path, kind, owner.name, changed, size))
    return sorted(found, key=lambda item: item.changed)


def in_use(item: Stored, keep) -> bool:
    return any(item.path == k or item.path in k.parents for k in keep)


def expired(items: list[Stored], now: float, retention_seconds: float, keep=()) -> list[Stored]:
    """The deletable items unchanged for `retention_seconds`, except those holding a path of `keep`."""
    return [i for i in items if i.deletable and now - i.changed > retention_seconds and not in_use(i, keep)]


def over_limit(items: list[Stored], max_bytes: float, keep=()) -> list[Stored]:
    """The oldest deletable items whose removal brings the total under `max_bytes` (as close as the
    deletable ones allow)."""
    total, chosen = sum(i.size for i in items), []
    for item in items:
        if total <= max_bytes:
            break
        if item.deletable and not in_use(item, keep):
            chosen.append(item)
            total -= item.size
    return chosen


def remove(path: Path) -> None:
    """Delete a file or a folder tree; gone already is fine."""
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def sweep(root: str | Path, now: float, retention_seconds: float, max_bytes: float, keep=()) -> list[Path]:
    """Delete what `expired` and then `over_limit` choose; the deleted paths. `keep`: paths in use
    (a run training or waiting to, and its data), never deleted."""
    keep = [Path(k).resolve() for k in keep]
    items = stored(Path(root).resolve())
    old = expired(items, now, retention_seconds, keep)
    rest = [i for i in items if i not in old]
    gone = old + over_limit(rest, max_bytes, keep)
    for item in gone:
        remove(item.path)
    return [item.path for item in gone]
