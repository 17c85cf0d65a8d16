"""Files, folders, zips and pasted texts in; results per input out, exact duplicates dropped."""
from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..document import Document
from ..errors import DataError
from .common import MB, FileReport, FileResult, Message, ReadOptions, count_documents, message
from .registry import bytes_result, file_format, pasted_result

# Files that operating systems and editors leave behind; never the user's text, so not reported.
IGNORED_NAMES = {".ds_store", "thumbs.db", "desktop.ini"}



def is_ignored(name: str) -> bool:
    parts = PurePosixPath(name.replace("\\", "/")).parts
    return any(p.startswith(".") or p == "__MACOSX" for p in parts) or parts[-1].lower() in IGNORED_NAMES


def path_results(path: Path, options: ReadOptions) -> list[FileResult]:
    """Results of a path given by the user: a file, a zip, or a folder walked recursively."""
    if path.is_dir():
        files = [p for p in sorted(path.rglob("*")) if p.is_file() and not is_ignored(str(p.relative_to(path)))]
        results = [r for f in files for r in file_results(f, options, depth=0)]
        without_export_extras(results, str(path))
        return results + container_report(str(path), "folder", results)
    if not path.is_file():
        return [skipped(str(path), "unknown", message("missing"))]
    return file_results(path, options, depth=0)


def file_results(path: Path, options: ReadOptions, depth: int) -> list[FileResult]:
    name = str(path)
    is_zip = path.suffix.lower() == ".zip"
    limit = options.max_zip_mb if is_zip else options.max_file_mb
    size = path.stat().st_size
    if size > limit * MB:  # checked before reading, so a huge file is never loaded
        return [skipped(name, "zip" if is_zip else file_format(name) or "unknown",
                        message("too_large", size=size / MB, limit=limit))]
    raw = path.read_bytes()
    if is_zip:
        return zip_results(raw, name, options, depth + 1, ZipBudget(int(options.max_zip_mb * MB)))
    return [bytes_result(name, raw, options)]


@dataclass
class ZipBudget:
    """Uncompressed bytes an upload may still expand to, shared by nested zips."""
    left: int


def zip_results(raw: bytes, name: str, options: ReadOptions, depth: int, budget: ZipBudget) -> list[FileResult]:
    """Read a zip's members in memory: member names that escape the folder, too many members, and
    expansion beyond the budget refuse the whole archive; nested zips deeper than allowed are skipped."""
    if depth > options.max_zip_depth:
        return [skipped(name, "zip", message("zip_too_deep", depth=options.max_zip_depth))]
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
        members = [m for m in archive.infolist() if not m.is_dir()]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError) as err:
        return [skipped(name, "zip", message("zip_bad", error=str(err) or type(err).__name__))]
    refusal = zip_refusal(members, options, budget)
    if refusal:
        return [skipped(name, "zip", refusal)]
    results: list[FileResult] = []
    for member in sorted(members, key=lambda m: member_name(m)):
        inner = member_name(member)
        if is_ignored(inner):
            continue
        results += member_results(archive, member, f"{name}/{inner}", options, depth, budget)
    without_export_extras(results, name)
    return results + container_report(name, "zip", results)


@dataclass(frozen=True)
class ExportExtras:
    """Files that come with an export but are not the author's posts, skipped as "not a post" when the
    export is in the same zip or folder. `shows` tells a result of the export itself; `extra` one of its
    extras (given its path inside the container and every path there)."""
    shows: Callable[[PurePosixPath, FileReport], bool]
    extra: Callable[[PurePosixPath, FileReport, set[PurePosixPath]], bool]
    what: str
    what_ja: str


def in_takeout_blogs(inner: PurePosixPath) -> bool:
    """Google Takeout's Blogger/Blogs/<blog>/feed.atom: a blog's posts, pages and comments."""
    return inner.name == "feed.atom" and inner.parts[-4:-2] == ("Blogger", "Blogs")


def takeout_extra(inner: PurePosixPath, report: FileReport, names: set[PurePosixPath]) -> bool:
    """Takeout's index page (archive_browser.html), a blog's theme (Blogger/Blogs/<blog>/theme-*.html),
    and Blogger/Comments/<blog>/feed.atom, which repeats the comments of Blogger/Blogs/<blog>/feed.atom."""
    if report.format == "html":
        return inner.name == "archive_browser.html" or "Blogger" in inner.parts[:-1]
    comments = inner.name == "feed.atom" and inner.parts[-4:-2] == ("Blogger", "Comments")
    return comments and inner.parent.parent.parent / "Blogs" / inner.parent.name / "feed.atom" in names


EXPORT_EXTRAS = (
    # Medium's zip: posts/ holds the author's writing; the rest (README, profile, bookmarks, claps,
    # highlights of others' posts, lists …) is the account's data.
    ExportExtras(lambda inner, report: report.format == "medium",
                 lambda inner, report, names: report.format == "html" and "posts" not in inner.parts[:-1],
                 "a file of the Medium export outside posts/ (profile, bookmarks, lists …)",
                 "Mediumのエクスポートのposts/以外のファイル（プロフィール・ブックマークなど）"),
    ExportExtras(lambda inner, report: report.format == "atom" and in_takeout_blogs(inner), takeout_extra,
                 "a file of the Blogger Takeout besides Blogs/…/feed.atom (index page, theme, the comments' copy)",
                 "BloggerのTakeoutのBlogs/…/feed.atom以外のファイル（目次ページ・テーマ・コメントの写し）"),
)


def without_export_extras(results: list[FileResult], container: str):
    """The extras of each export found in a zip (or the folder it was extracted to) skipped as not posts."""
    inner = {id(r): PurePosixPath(r.report.name[len(container) + 1:].replace("\\", "/")) for r in results}
    names = set(inner.values())
    for rule in EXPORT_EXTRAS:
        if not any(rule.shows(inner[id(r)], r.report) for r in results):
            continue
        for result in results:
            if rule.extra(inner[id(result)], result.report, names):
                skip_extra(result, rule)


def skip_extra(result: FileResult, rule: ExportExtras):
    result.documents = []
    count_documents(result.report, [])
    result.report.left_out.clear()  # what an extra holds is not the export's to count (a copy, a theme)
    result.report.authors.clear()
    result.report.warnings.clear()
    result.report.warnings_ja.clear()
    result.report.skip(message("not_a_post", what=rule.what, what_ja=rule.what_ja))


def zip_refusal(members: list[zipfile.ZipInfo], options: ReadOptions, budget: ZipBudget) -> Message | None:
    """Why the whole archive is refused, judged from its directory before anything is decompressed."""
    unsafe = next((member_name(m) for m in members if is_unsafe_member(member_name(m))), None)
    if unsafe:
        return message("zip_unsafe", member=unsafe)
    if len(members) > options.max_zip_members:
        return message("zip_too_many", limit=options.max_zip_members)
    if sum(m.file_size for m in members) > budget.left:
        return message("zip_bomb", limit=options.max_zip_mb)
    return None


def member_results(archive: zipfile.ZipFile, member: zipfile.ZipInfo, name: str, options: ReadOptions,
                   depth: int, budget: ZipBudget) -> list[FileResult]:
    is_zip = name.lower().endswith(".zip")
    fmt = "zip" if is_zip else file_format(name) or "unknown"
    if member.flag_bits & 0x1:
        return [skipped(name, fmt, message("zip_encrypted"))]
    if not is_zip and member.file_size > options.max_file_mb * MB:
        return [skipped(name, fmt, message("too_large", size=member.file_size / MB, limit=options.max_file_mb))]
    if is_zip and depth + 1 > options.max_zip_depth:
        return [skipped(name, "zip", message("zip_too_deep", depth=options.max_zip_depth))]
    with archive.open(member) as f:
        data = f.read(budget.left + 1)  # never more than the budget, whatever the header claims
    budget.left -= len(data)
    if budget.left < 0:
        return [skipped(name, fmt, message("zip_bomb", limit=options.max_zip_mb))]
    if is_zip:
        return zip_results(data, name, options, depth + 1, budget)
    return [bytes_result(name, data, options)]


def member_name(member: zipfile.ZipInfo) -> str:
    """The member's name. Without the UTF-8 flag zipfile reads the stored bytes as cp437, but
    Japanese names are then UTF-8 (Info-ZIP on Linux and macOS leave the flag out) or cp932
    (Japanese Windows); tried in that order, since cp932 bytes are seldom valid UTF-8."""
    if member.flag_bits & 0x800:
        return member.filename
    try:
        raw = member.filename.encode("cp437")
    except UnicodeEncodeError:
        return member.filename
    for encoding in ("utf-8", "cp932"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    return member.filename


def is_unsafe_member(name: str) -> bool:
    """Would extracting this name write outside the archive's folder (absolute path, drive, ..)?"""
    unified = name.replace("\\", "/")
    return (unified.startswith("/") or bool(re.match(r"^[A-Za-z]:", unified)) or "\x00" in unified
            or ".." in unified.split("/"))


def container_report(name: str, kind: str, results: list[FileResult]) -> list[FileResult]:
    """An extra line for a folder or zip of which nothing was used."""
    if any(r.report.used for r in results):
        return []
    kind_ja = {"folder": "フォルダ", "zip": "ZIPファイル"}[kind]
    return [skipped(name, kind, message("container_unusable", kind=kind, kind_ja=kind_ja, count=len(results)))]


def skipped(name: str, fmt: str, msg: Message) -> FileResult:
    report = FileReport(name, fmt)
    report.skip(msg)
    return FileResult(report)


# ----------------------------------------------------------------------------------------------
# Everything



def read_inputs(paths=(), texts=(), options: ReadOptions | None = None) -> list[FileResult]:
    """Read files, folders, zips and pasted texts; exact duplicate documents are dropped (the first
    copy stays) and counted in the reports."""
    options = options or ReadOptions()
    results = [r for p in paths for r in path_results(Path(p), options)]
    for i, text in enumerate(texts, start=1):
        results.append(pasted_result(text, "pasted text" if len(texts) == 1 else f"pasted text {i}", options))
    drop_duplicates(results)
    return results


def drop_duplicates(results: list[FileResult]) -> int:
    """Remove exact duplicate documents across all results; returns how many were dropped."""
    first_seen: dict[tuple[str, str], str] = {}
    dropped = 0
    for result in results:
        kept = []
        for doc in result.documents:
            key = (doc.prompt, doc.text)
            if key in first_seen:
                dropped += 1
                continue
            first_seen[key] = result.report.name
            kept.append(doc)
        removed = len(result.documents) - len(kept)
        if removed:
            update_for_duplicates(result, kept, removed, first_seen)
    return dropped


def update_for_duplicates(result: FileResult, kept: list[Document], removed: int, first_seen: dict):
    report = result.report
    if not kept:
        other = first_seen[(result.documents[0].prompt, result.documents[0].text)]
        report.skip(message("duplicate", other=other))
    else:
        report.warn(message("duplicates_dropped", count=removed))
    report.count("duplicates", removed)
    result.documents = kept
    count_documents(report, kept)


def usable_documents(results: list[FileResult]) -> list[Document]:
    """The documents of all used inputs; DataError naming every input's reason when none is usable."""
    docs = [d for r in results for d in r.documents]
    if docs:
        return docs
    if not results:
        raise DataError("no text given")
    raise DataError(skip_summary(results))


def skip_summary(results: list[FileResult], limit: int = 5) -> str:
    """One line: the reasons of the first `limit` skipped inputs."""
    skipped_reports = [r.report for r in results if not r.report.used]
    parts = [f"{r.name}: {r.reason}" for r in skipped_reports[:limit]]
    if len(skipped_reports) > limit:
        parts.append(f"and {len(skipped_reports) - limit} more")
    return "; ".join(parts)
