"""What every reader shares: messages in two languages, the per-input report, the read options,
and the normalization every document goes through."""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from ..document import Document

MB = 1024 * 1024


# ----------------------------------------------------------------------------------------------
# Messages: every reason and warning in English (CLI) and Japanese (UI).

MESSAGES = {
    "missing": ("no such file or folder", "ファイルまたはフォルダが見つかりません"),
    "empty": ("the file is empty", "ファイルが空です"),
    "blank": ("the file is empty (whitespace only)", "空白しか含まれていない空のファイルです"),
    "binary": ("looks binary ({kind}), not text", "テキストではなくバイナリ（{kind_ja}）のようです"),
    "undecodable": ("cannot decode it as UTF-8, UTF-16, Shift_JIS, EUC-JP or ISO-2022-JP without garbling{hint}",
                    "UTF-8・UTF-16・Shift_JIS・EUC-JP・ISO-2022-JPのどれでも文字化けせずに読めません{hint_ja}"),
    "not_that_encoding": ("not valid {encoding} text ({error})", "{encoding}として読めません（{error}）"),
    "unknown_encoding": ("unknown encoding {encoding}", "不明な文字コードです：{encoding}"),
    "doubtful": ("the decoding is doubtful: as {encoding} it reads as garbled text ({detail}); not used, so that "
                 "no mojibake is trained on; give the encoding explicitly if {encoding} is right",
                 "文字コードの判定が不確かです：{encoding}として読むと文字化けしているようです（{detail_ja}）。"
                 "文字化けを学習しないよう使いません。{encoding}で正しければ文字コードを指定してください"),
    "too_large": ("the file is {size:.1f} MB, over the {limit:g} MB limit",
                  "ファイルが{size:.1f} MBあり、上限の{limit:g} MBを超えています"),
    "unsupported": ("unsupported file type {suffix} (accepted: {accepted})",
                    "対応していない種類のファイルです：{suffix}（対応：{accepted}）"),
    "not_json": ("not valid JSON ({error})", "JSONとして読めません（{error}）"),
    "no_json_line": ("no line is JSON: line {line} is not JSON ({error})",
                     "JSONとして読める行がありません：{line}行目がJSONではありません（{error}）"),
    "bad_json_lines": ("{count} line(s) are not JSON and were skipped (first: line {line}: {error})",
                       "JSONとして読めない行が{count}行あり、読み飛ばしました（最初は{line}行目：{error}）"),
    "no_columns": ("no recognisable columns (found: {found}); use question/answer, instruction/output, "
                   "prompt/response, 質問/回答, a chat `messages` list, or text",
                   "使える列が見つかりません（あった列：{found}）。question/answer、instruction/output、"
                   "prompt/response、質問/回答、チャット形式のmessages、またはtextの列を使ってください"),
    "incomplete_records": ("{count} record(s) without both a question and an answer (or a text) were skipped "
                           "(first: {where})",
                           "質問と回答（またはテキスト）がそろっていないレコードが{count}件あり、読み飛ばしました"
                           "（最初は{where_ja}）"),
    "nothing_left": ("nothing is left after cleanup ({what})", "整形後に本文が残りません（{what_ja}）"),
    "duplicate": ("exact duplicate of {other}", "{other} とまったく同じ内容です"),
    "duplicates_dropped": ("{count} exact duplicate document(s) dropped", "完全に重複する文書を{count}件除きました"),
    "replacement_removed": ("{count} replacement character(s) (\ufffd) removed: the file was already damaged there",
                            "置換文字（\ufffd）を{count}個除きました：ファイルのその部分はすでに壊れています"),
    "zip_bad": ("not a readable zip archive ({error})", "ZIPファイルとして読めません（{error}）"),
    "zip_unsafe": ("the zip has a member name that points outside its folder ({member}): refused, nothing read",
                   "ZIPにフォルダの外を指すファイル名（{member}）があるため、中身を読まずに拒否しました"),
    "zip_too_deep": ("a zip nested more than {depth} levels deep: not opened",
                     "ZIPの入れ子が{depth}段を超えているため開きません"),
    "zip_bomb": ("the zip expands to more than {limit:g} MB (a zip bomb?): refused",
                 "ZIPを展開すると{limit:g} MBを超えるため（ZIP爆弾の疑い）拒否しました"),
    "zip_too_many": ("the zip holds more than {limit} files: refused", "ZIPのファイル数が{limit}を超えるため拒否しました"),
    "zip_encrypted": ("the zip member is encrypted", "ZIP内のファイルが暗号化されています"),
    "container_unusable": ("nothing usable in this {kind} ({count} file(s) skipped)",
                           "この{kind_ja}には使えるファイルがありません（{count}件を除外）"),
    "not_an_export": ("an XML file that is not a blog export (WordPress, note, Blogger)",
                      "ブログのエクスポート（WordPress・note・Blogger）ではないXMLファイルです"),
    "bad_xml": ("not well-formed XML ({error})", "XMLとして読めません（{error}）"),
    "xml_entities": ("the XML declares its own entities (<!ENTITY>): refused, nothing read",
                     "XMLが独自の実体（<!ENTITY>）を宣言しているため、読まずに拒否しました"),
    "left_out": ("left out: {what}{hint}", "除外：{what_ja}{hint_ja}"),
    "only_left_out": ("nothing published to use: {what}{hint}", "使える公開記事がありません：{what_ja}{hint_ja}"),
    "not_a_post": ("not a post: {what}", "記事ではありません：{what_ja}"),
    "several_authors": ("posts by {count} authors: {names} (keep one with --author NAME)",
                        "{count}人の著者の記事があります：{names_ja}（「著者で絞る」に名前を入れると絞れます）"),
    "multi_turn": ("chats with several turns: each user/assistant turn became its own Q&A pair",
                   "複数回のやりとりがあるチャットは、質問と回答の組ごとに分けました"),
}


@dataclass(frozen=True)
class Message:
    """One reason or warning: a stable code, English for the CLI, Japanese for the UI."""
    code: str
    en: str
    ja: str


def message(code: str, **fields) -> Message:
    en, ja = MESSAGES[code]
    return Message(code, en.format(**fields), ja.format(**fields))


class Skip(Exception):
    """Raised inside a reader: this input is not used, for the reason given."""

    def __init__(self, msg: Message):
        super().__init__(msg.en)
        self.message = msg


# ----------------------------------------------------------------------------------------------
# Reports


@dataclass
class FileReport:
    """What happened to one input (a file, a zip member, a folder, or a pasted text)."""
    name: str
    format: str = "unknown"
    encoding: str | None = None
    outcome: str = "used"                 # "used" or "skipped"
    reason: str = ""                      # why it was skipped (English, one line)
    reason_ja: str = ""
    reason_code: str = ""
    documents: int = 0                    # documents kept (records for jsonl/json/csv, posts for exports)
    posts: int = 0                        # of which blog posts (exports, Markdown with front matter)
    comments: int = 0                     # of which readers' comments (only with include_comments)
    qa_pairs: int = 0                     # of which question/answer pairs
    characters: int = 0                   # characters kept after cleanup
    stripped: dict[str, int] = field(default_factory=dict)  # e.g. ruby, notes, html_boilerplate
    left_out: dict[str, int] = field(default_factory=dict)  # entries not used, by LEFT_OUT code: draft, comment …
    # Exports: posts per author, named as the export names them (a WordPress author's display name),
    # counted after the draft and page filters, before the author filter (ReadOptions.authors).
    authors: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    warnings_ja: list[str] = field(default_factory=list)

    @property
    def used(self) -> bool:
        return self.outcome == "used"

    def skip(self, msg: Message):
        self.outcome, self.reason, self.reason_ja, self.reason_code = "skipped", msg.en, msg.ja, msg.code

    def warn(self, msg: Message):
        self.warnings.append(msg.en)
        self.warnings_ja.append(msg.ja)

    def count(self, what: str, n: int):
        if n:
            self.stripped[what] = self.stripped.get(what, 0) + n

    def leave_out(self, code: str, n: int = 1):
        """Count an entry of an export that is not used (a LEFT_OUT code)."""
        if code not in LEFT_OUT:
            raise ValueError(f"unknown left-out code {code!r}")
        if n:
            self.left_out[code] = self.left_out.get(code, 0) + n


# What an export holds besides the author's published posts: code -> (English, Japanese), and
# whether include_drafts / include_comments brings it back (None: never used).
LEFT_OUT = {
    "draft": ("drafts and unpublished posts", "下書き・非公開の記事", "include_drafts"),
    "page": ("pages (not posts)", "固定ページ", None),
    "attachment": ("attachments (media entries)", "添付ファイル（メディア）", None),
    "revision": ("revisions (older copies of posts)", "リビジョン（記事の古い版）", None),
    "comment": ("readers' comments", "読者のコメント", "include_comments"),
    "unapproved_comment": ("unapproved or spam comments", "未承認・スパムのコメント", None),
    "trackback": ("trackbacks and pingbacks", "トラックバック・ピンバック", None),
    "trash": ("posts in the trash", "ゴミ箱の記事", None),
    "other": ("other entries (menus, settings, templates, other types)", "その他の項目（メニュー・設定・テンプレートなど）",
              None),
    "empty": ("posts with no text left after cleanup", "整形後に本文が残らない記事", None),
    "other_author": ("posts by other authors", "ほかの著者の記事", "authors"),
}
# Each option's command-line flag and the studio's name for it (in Japanese).
OPTION_FLAGS = {"include_drafts": ("--include-drafts", "下書きも使う"),
                "include_comments": ("--include-comments", "コメントも使う"),
                "authors": ("--author NAME", "著者で絞る")}


def left_out_message(report: FileReport, code: str) -> Message:
    """`left_out` or `only_left_out`: what was left out, counted, and the options that bring it back."""
    what = ", ".join(f"{LEFT_OUT[c][0]}: {n}" for c, n in report.left_out.items())
    what_ja = "、".join(f"{LEFT_OUT[c][1]}{n}件" for c, n in report.left_out.items())
    options = sorted({LEFT_OUT[c][2] for c in report.left_out if LEFT_OUT[c][2]})
    hint = f" (use them with {' / '.join(OPTION_FLAGS[o][0] for o in options)})" if options else ""
    hint_ja = f"（「{'」「'.join(OPTION_FLAGS[o][1] for o in options)}」で使えます）" if options else ""
    return message(code, what=what, what_ja=what_ja, hint=hint, hint_ja=hint_ja)


def ranked_authors(report: FileReport) -> list[tuple[str, int]]:
    """(author, posts) of a file, most posts first; ties in the export's order."""
    return sorted(report.authors.items(), key=lambda item: -item[1])


def several_authors_message(report: FileReport) -> Message:
    """`several_authors`: the authors of a file's posts with their counts, most first."""
    ranked = ranked_authors(report)
    return message("several_authors", count=len(ranked), names=", ".join(f"{a} {n}" for a, n in ranked),
                   names_ja="、".join(f"{a} {n}件" for a, n in ranked))


def count_documents(report: FileReport, docs: list[Document]):
    """The report's document counts, from the documents kept."""
    report.documents = len(docs)
    report.qa_pairs = sum(1 for d in docs if d.prompt)
    report.posts = sum(1 for d in docs if d.kind == "post")
    report.comments = sum(1 for d in docs if d.kind == "comment")
    report.characters = sum(len(d.prompt) + len(d.text) for d in docs)


@dataclass
class FileResult:
    """A FileReport and the documents read from that input."""
    report: FileReport
    documents: list[Document] = field(default_factory=list)


@dataclass
class ReadOptions:
    """How inputs are read and cleaned (finetune.prepare.PrepareSettings documents each one)."""
    nfkc: bool = True
    keep_code: bool = False
    include_drafts: bool = False     # exports: drafts and unpublished posts too
    include_comments: bool = False   # exports: readers' (approved) comments too, one document each
    authors: tuple[str, ...] = ()    # exports: only these authors' posts; empty = everyone's
    titles: bool = False             # each post's title as the first line of its document
    encoding: str = "auto"
    encodings: dict[str, str] = field(default_factory=dict)   # per-file overrides: name -> codec
    # 50 MB of Japanese text is about 17 million characters: far more than a small model needs.
    max_file_mb: float = 50.0
    # Total uncompressed size of one zip upload, nested zips included.
    max_zip_mb: float = 200.0
    # A zip holding a zip is common (a downloaded archive re-zipped); deeper nesting is not.
    max_zip_depth: int = 2
    # Far more files than anyone uploads by hand; stops archives built to exhaust memory with entries.
    max_zip_members: int = 10_000

    def __post_init__(self):
        if self.max_file_mb <= 0 or self.max_zip_mb <= 0:
            raise ValueError("size limits must be positive")
        if self.max_zip_depth < 1 or self.max_zip_members < 1:
            raise ValueError("zip depth and member limits must be at least 1")
        # A list (from JSON: training_config.json) or one name (an API caller) becomes a tuple.
        names = [self.authors] if isinstance(self.authors, str) else list(self.authors)
        self.authors = tuple(str(name).strip() for name in names)
        if not all(self.authors):
            raise ValueError("an author name is empty")

    def flags(self) -> list[str]:
        """The command-line flags (`python -m finetune prepare/train/scratch`) that give these options."""
        default = ReadOptions()
        out = ["--encoding", self.encoding] if self.encoding != default.encoding else []
        for name, encoding in self.encodings.items():
            out += ["--encoding", f"{name}={encoding}"]
        out += [] if self.nfkc else ["--no-nfkc"]
        out += ["--" + name.replace("_", "-") for name in ("keep_code", "include_drafts", "include_comments", "titles")
                if getattr(self, name)]
        for name in self.authors:
            out += ["--author", name]
        for name in ("max_file_mb", "max_zip_mb"):
            if getattr(self, name) != getattr(default, name):
                out += ["--" + name.replace("_", "-"), f"{getattr(self, name):g}"]
        return out

    def encoding_for(self, name: str) -> str:
        """The override for this input, matched on its full name or its file name; else the global one."""
        return self.encodings.get(name) or self.encodings.get(PurePosixPath(name).name) or self.encoding


# ----------------------------------------------------------------------------------------------
# Authors


def author_key(name: str) -> str:
    """An author's name as compared: NFKC, case-folded, runs of spaces as one, stripped."""
    return WHITESPACE_RUN.sub(" ", unicodedata.normalize("NFKC", name).casefold()).strip()


def other_author(names, options: ReadOptions) -> bool:
    """Whether a post by `names` (each name the export gives its author: a WordPress login and display
    name) is by none of options.authors; False when no authors were asked for or the post names none."""
    keys = {author_key(n) for n in names if n.strip()}
    return bool(options.authors and keys) and not keys & {author_key(a) for a in options.authors}


def count_authors(report: FileReport, names):
    """One more post for each of its authors (as the export names them) in report.authors."""
    for name in filter(None, (n.strip() for n in names)):
        report.authors[name] = report.authors.get(name, 0) + 1


def author_left_out(report: FileReport, shown, options: ReadOptions, aliases=()) -> str:
    """"other_author" when the post is by none of options.authors, else "" (see other_author). Its
    authors, `shown` as the report names them, are counted; `aliases`: other names of theirs that match."""
    count_authors(report, shown)
    return "other_author" if other_author([*shown, *aliases], options) else ""


# ----------------------------------------------------------------------------------------------
# Normalization


NEWLINES = re.compile(r"\r\n|[\r\u2028\u2029\x0b\x0c\x85]")
CONTROLS = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f\u200b\ufeff]")
BLANK_RUNS = re.compile(r"\n{3,}")
TRAILING_SPACE = re.compile(r"[ \t\u3000]+\n")


def unified_newlines(text: str) -> str:
    return NEWLINES.sub("\n", text)


def normalized(text: str, nfkc: bool, report: FileReport | None = None) -> str:
    """Newlines unified, control characters and U+FFFD removed, NFKC (when `nfkc`), trailing spaces
    removed, runs of blank lines collapsed to one, and the ends trimmed."""
    text = unified_newlines(text)
    text, controls = CONTROLS.subn("", text)
    replacements = text.count("\ufffd")
    text = text.replace("\ufffd", "")
    if nfkc:
        text = unicodedata.normalize("NFKC", text)
    text = TRAILING_SPACE.sub("\n", text + "\n")
    text = BLANK_RUNS.sub("\n\n", text).strip("\n")
    if report is not None:
        report.count("control_characters", controls)
        report.count("replacement_characters", replacements)
    return text.rstrip()



def text_documents(text: str, name: str, options: ReadOptions, report: FileReport) -> list[Document]:
    """One document of the normalized text (none when nothing is left)."""
    text = normalized(text, options.nfkc, report)
    return [Document(name, text)] if text else []


def post_document(name: str, title: str, date: str, body: str, options: ReadOptions, report: FileReport,
                  kind: str = "post") -> Document | None:
    """One blog post (or comment) as a document: the body normalized, the title first when
    `options.titles`. None (counted as an empty post) when no text is left."""
    body = normalized(body, options.nfkc, report)
    title = normalized(WHITESPACE_RUN.sub(" ", title), options.nfkc)
    if not body:
        report.leave_out("empty")
        return None
    text = f"{title}\n{body}" if options.titles and title else body
    return Document(name, text, title=title, date=date, kind=kind)


WHITESPACE_RUN = re.compile(r"\s+")
