"""Real-world text in, clean documents out: one reader per format, encoding detection and cleanup.

Inputs: .txt (plain, or Aozora Bunko with ruby and notes), .md, .html/.htm, .jsonl, .json, .csv/.tsv,
folders of those (walked recursively) and .zip archives of those (read in memory with size caps,
never extracted to disk), plus pasted text. One document per file, or per record for jsonl/json/csv;
records with question/answer fields (or chat `messages`) become Q&A documents (finetune.qa).

Every input gets a FileReport: detected encoding, format, characters kept, what was stripped,
warnings, and the outcome (used, or skipped with a one-line reason in English and Japanese).
Nothing is guessed silently: a file whose decoding is doubtful is skipped and reported, so garbled
text (mojibake) never reaches training.
"""
from __future__ import annotations

import codecs
import csv
import io
import json
import re
import unicodedata
import zipfile
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path, PurePosixPath

from .data import Document
from .errors import DataError
from .qa import qa_document

MB = 1024 * 1024

SUFFIX_FORMATS = {
    ".txt": "text", ".text": "text",
    ".md": "markdown", ".markdown": "markdown",
    ".html": "html", ".htm": "html", ".xhtml": "html",
    ".jsonl": "jsonl", ".ndjson": "jsonl",
    ".json": "json",
    ".csv": "csv", ".tsv": "csv",
}
ACCEPTED = ".txt .md .html .htm .jsonl .json .csv .tsv .zip"

# Files that operating systems and editors leave behind; never the user's text, so not reported.
IGNORED_NAMES = {".ds_store", "thumbs.db", "desktop.ini"}


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
    documents: int = 0                    # documents kept (records for jsonl/json/csv)
    qa_pairs: int = 0                     # of which question/answer pairs
    characters: int = 0                   # characters kept after cleanup
    stripped: dict[str, int] = field(default_factory=dict)  # e.g. ruby, notes, html_boilerplate
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

    def encoding_for(self, name: str) -> str:
        """The override for this input, matched on its full name or its file name; else the global one."""
        return self.encodings.get(name) or self.encodings.get(PurePosixPath(name).name) or self.encoding


# ----------------------------------------------------------------------------------------------
# Encodings

UTF8_BOM = b"\xef\xbb\xbf"
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")

# Leading bytes of files that are certainly not text: (magic, English, Japanese).
SIGNATURES = (
    (b"\x89PNG", "PNG image", "PNG画像"),
    (b"\xff\xd8\xff", "JPEG image", "JPEG画像"),
    (b"GIF87a", "GIF image", "GIF画像"),
    (b"GIF89a", "GIF image", "GIF画像"),
    (b"%PDF", "PDF document", "PDF文書"),
    (b"PK\x03\x04", "zip archive or Office document", "ZIPまたはOffice文書"),
    (b"\x7fELF", "executable", "実行ファイル"),
    (b"MZ", "Windows executable", "Windowsの実行ファイル"),
    (b"\xcf\xfa\xed\xfe", "executable", "実行ファイル"),
    (b"\xca\xfe\xba\xbe", "executable", "実行ファイル"),
    (b"\x1f\x8b", "gzip archive", "gzip圧縮ファイル"),
    (b"7z\xbc\xaf\x27\x1c", "7-Zip archive", "7-Zip圧縮ファイル"),
    (b"Rar!", "RAR archive", "RAR圧縮ファイル"),
    (b"\xd0\xcf\x11\xe0", "old Office document", "旧形式のOffice文書"),
    (b"SQLite format 3\x00", "SQLite database", "SQLiteデータベース"),
    (b"OggS", "audio", "音声ファイル"),
    (b"ID3", "MP3 audio", "MP3音声"),
    (b"RIFF", "media file", "メディアファイル"),
    (b"\x00\x00\x01\x00", "icon image", "アイコン画像"),
)

# Auto-detection chooses among these (after BOMs and ISO-2022-JP escapes); the *_2004 codecs add
# the JIS X 0213 characters that cp932 and euc-jp lack.
LEGACY_CODECS = ("cp932", "euc-jp", "shift_jis_2004", "euc_jis_2004")
ISO2022_CODECS = ("iso2022_jp", "iso2022_jp_2004", "iso2022_jp_ext")

ENCODING_LABELS = {"cp932": "cp932 (Shift_JIS)", "shift_jis_2004": "Shift_JIS-2004", "euc-jp": "EUC-JP",
                   "euc_jis_2004": "EUC-JIS-2004", "iso-2022-jp": "ISO-2022-JP", "utf-8": "UTF-8",
                   "utf-8-sig": "UTF-8 (BOM)", "utf-16": "UTF-16 (BOM)"}


def binary_kind(raw: bytes) -> tuple[str, str] | None:
    """(English, Japanese) name of the kind of binary file these bytes start, or None for text."""
    for magic, en, ja in SIGNATURES:
        if raw.startswith(magic) and (magic != b"MZ" or b"\x00" in raw[:1024]):  # "MZ…" can start a text
            return en, ja
    if raw.startswith(UTF16_BOMS):
        return None
    if b"\x00" in raw[:8192]:
        return "contains NUL bytes; UTF-16 needs a byte-order mark", "NULバイトを含む。UTF-16ならBOMが必要"
    return None


def decoded_text(raw: bytes, encoding: str = "auto") -> tuple[str, str]:
    """(text, encoding name) of a file's bytes. An `encoding` other than "auto" is used as given, strictly.
    Raises Skip when the bytes are binary, cannot be decoded, or decode doubtfully."""
    kind = binary_kind(raw)
    if kind:
        raise Skip(message("binary", kind=kind[0], kind_ja=kind[1]))
    if encoding != "auto":
        return strictly_decoded(raw, encoding), encoding
    if raw.startswith(UTF8_BOM):
        return strictly_decoded(raw[3:], "utf-8"), "utf-8-sig"
    if raw.startswith(UTF16_BOMS):
        return strictly_decoded(raw, "utf-16"), "utf-16"
    if b"\x1b" in raw and max(raw) < 0x80:
        text = first_decoding(raw, ISO2022_CODECS)
        if text is not None:
            return text, "iso-2022-jp"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return legacy_decoded(raw)
    origin = double_encoding(text)
    if origin:
        raise Skip(message("doubtful", encoding="utf-8", detail=f"it looks like UTF-8 read as {origin} and saved again",
                           detail_ja=f"UTF-8を{origin}として読んで保存し直したもののようです"))
    damaged = replacement_share(text)
    if damaged > MAX_REPLACEMENT_SHARE:
        raise Skip(message("doubtful", encoding="utf-8", detail=f"{damaged:.0%} of it is replacement characters (\ufffd)",
                           detail_ja=f"{damaged:.0%}が置換文字（\ufffd）です"))
    return text, "utf-8"


# A few U+FFFD in a long text are dropped with a warning; more means the file was garbled when saved.
MAX_REPLACEMENT_SHARE = 0.01


def replacement_share(text: str) -> float:
    """Share of U+FFFD among the non-ASCII characters of the text's start."""
    sample = text[:50_000]
    if "\ufffd" not in sample:
        return 0.0
    return sample.count("\ufffd") / max(len(WIDE_CHARACTER.findall(sample)), 1)


def strictly_decoded(raw: bytes, encoding: str) -> str:
    try:
        return raw.decode(encoding)
    except LookupError:
        raise Skip(message("unknown_encoding", encoding=encoding)) from None
    except UnicodeDecodeError as err:
        error = f"byte 0x{raw[err.start]:02x} at position {err.start}"
        raise Skip(message("not_that_encoding", encoding=encoding, error=error)) from None


def first_decoding(raw: bytes, encodings) -> str | None:
    """The text of the first encoding in `encodings` that decodes `raw` without error."""
    for encoding in encodings:
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    return None


def legacy_decoded(raw: bytes) -> tuple[str, str]:
    """Shift_JIS/CP932 or EUC-JP: the candidates that decode strictly, the most Japanese-looking
    one winning (charset-normalizer breaks near ties). Refused when none decodes or the winner
    does not look like Japanese at all."""
    candidates = {}
    for encoding in LEGACY_CODECS:
        if encoding.endswith("2004") and candidates:
            break  # the JIS X 0213 codecs only when neither cp932 nor euc-jp fits
        text = first_decoding(raw, [encoding])
        if text is not None:
            candidates[encoding] = text
    if not candidates:
        raise Skip(message("undecodable", **likely_encoding_hint(raw)))
    encoding = best_candidate(raw, candidates)
    text = candidates[encoding]
    score = kana_share(text)
    if score < MIN_KANA_SHARE and not japanese_by_charset_normalizer(raw):
        detail = f"{score:.0%} kana among its non-ASCII characters"
        raise Skip(message("doubtful", encoding=encoding, detail=detail,
                           detail_ja=f"ASCII以外の文字のうち、かなは{score:.0%}"))
    return text, encoding


JAPANESE_CODECS = {"cp932", "shift_jis", "shift_jis_2004", "shift_jisx0213", "euc_jp", "euc_jis_2004",
                   "euc_jisx0213"}


def japanese_by_charset_normalizer(raw: bytes) -> bool:
    """A second opinion for text with little kana (names, addresses, lists of kanji): does
    charset-normalizer, over all encodings it knows, also find a Japanese one best?"""
    from charset_normalizer import from_bytes
    best = from_bytes(raw).best()
    return best is not None and codecs.lookup(best.encoding).name in JAPANESE_CODECS


# Japanese prose is at least a third kana; text decoded with the wrong legacy codec is mostly kanji
# and half-width katakana, with almost no hiragana. Below 5%, charset-normalizer has the last word.
MIN_KANA_SHARE = 0.05


WIDE_CHARACTER = re.compile(r"[^\x00-\x7f\s]")
KANA_OR_PUNCTUATION = re.compile(r"[\u3000-\u30ff\uff01-\uff60]")


def kana_share(text: str) -> float:
    """Share of the non-ASCII characters that are kana or Japanese punctuation (1.0 for pure ASCII),
    measured on the first 50,000 characters: a wrong codec garbles a file from its start."""
    sample = text[:50_000]
    wide = len(WIDE_CHARACTER.findall(sample))
    return len(KANA_OR_PUNCTUATION.findall(sample)) / wide if wide else 1.0


def best_candidate(raw: bytes, candidates: dict[str, str]) -> str:
    """The candidate encoding whose text looks most Japanese; charset-normalizer decides close calls."""
    if len(candidates) == 1:
        return next(iter(candidates))
    scores = {enc: kana_share(text) for enc, text in candidates.items()}
    ranked = sorted(scores, key=scores.get, reverse=True)
    if scores[ranked[0]] - scores[ranked[1]] > 0.2:  # a clear winner on kana alone
        return ranked[0]
    from charset_normalizer import from_bytes
    names = {codecs.lookup(enc).name: enc for enc in candidates}
    best = from_bytes(raw, cp_isolation=list(names)).best()
    return names.get(best.encoding, ranked[0]) if best else ranked[0]


def likely_encoding_hint(raw: bytes) -> dict[str, str]:
    """charset-normalizer's guess, as a hint in the undecodable message."""
    from charset_normalizer import from_bytes
    best = from_bytes(raw).best()
    if best is None:
        return {"hint": "", "hint_ja": ""}
    return {"hint": f"; it might be {best.encoding} (give the encoding explicitly if so)",
            "hint_ja": f"。{best.encoding}かもしれません（そうなら文字コードを指定してください）"}


# Traces of UTF-8 Japanese decoded with the wrong codec and saved again. Through cp1252/latin-1 each
# character becomes a lead letter (ã for kana, ä-é for kanji) followed by continuation symbols; through
# cp932 the lead bytes E3 80-83 (punctuation, hiragana, katakana) become these four kanji.
LATIN_MOJIBAKE = re.compile("[ÃÂâãäåæçèéï][\u0080-\u00bf\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192"
                            "\u02c6\u02dc\u2013-\u2022\u2026\u2030\u2039\u203a\u20ac\u2122]")
CP932_MOJIBAKE = re.compile("[縺繧繝縲]")


def double_encoding(text: str) -> str | None:
    """The codec through which UTF-8 text was garbled and saved again as UTF-8 (classic mojibake
    such as 'ã“ã‚“' or '縺薙ｓ'), or None when the text reads as intended. Judged on a sample."""
    sample = text[:20_000]  # mojibake runs through a whole file; its start is enough to see it
    wide = sum(1 for c in sample if ord(c) > 0x7F)
    if wide < 4:
        return None
    if 2 * len(LATIN_MOJIBAKE.findall(sample)) > wide / 2:  # half the non-ASCII text is lead+continuation pairs
        return "cp1252"
    if len(CP932_MOJIBAKE.findall(sample)) > wide / 5:  # in real text these kanji are rare
        return "cp932"
    return None


def encoding_label(encoding: str | None) -> str:
    return ENCODING_LABELS.get(encoding or "", encoding or "-")


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


# ----------------------------------------------------------------------------------------------
# Aozora Bunko

AOZORA_RULE = re.compile(r"^-{10,}[ \t]*$", re.M)
AOZORA_NOTATION = "【テキスト中に現れる記号について】"
AOZORA_FOOTER = re.compile(r"^底本[：:]", re.M)
RUBY_WITH_BAR = re.compile(r"[｜|]([^《》\n]+?)《[^《》\n]*》")
RUBY = re.compile(r"《[^《》\n]*》")
GAIJI = re.compile(r"※［＃([^］\n]*)］")
NOTE = re.compile(r"［＃[^］\n]*］")
UNICODE_NOTE = re.compile(r"U\+([0-9A-Fa-f]{4,6})")
JIS_NOTE = re.compile(r"(?:第[34]水準)?([12])-(\d{1,2})-(\d{1,2})")


# Ruby without a bar: kanji followed by a kana reading. Plain 《》 around other text can be ordinary
# double angle brackets, so they alone do not make a text Aozora-style.
KANJI_RUBY = re.compile(r"[\u3400-\u9fff々〆ヶ]《[\u3041-\u30ffー]+》")


def looks_like_aozora(text: str) -> bool:
    return (AOZORA_NOTATION in text or "［＃" in text or bool(AOZORA_FOOTER.search(text))
            or bool(RUBY_WITH_BAR.search(text)) or bool(KANJI_RUBY.search(text)))


def aozora_text(text: str, report: FileReport) -> str:
    """Aozora Bunko text without its header block, 底本 footer, ruby, editor notes and gaiji notes;
    paragraphs (lines) kept."""
    text = without_aozora_header(text, report)
    footer = AOZORA_FOOTER.search(text)
    if footer:
        report.count("footer_lines", text[footer.start():].count("\n") + 1)
        text = text[:footer.start()]
    text, bar = RUBY_WITH_BAR.subn(r"\1", text)
    text, plain = RUBY.subn("", text)
    report.count("ruby", bar + plain)
    text = GAIJI.sub(lambda m: gaiji_replacement(m.group(1), report), text)
    lines = []
    for line in text.split("\n"):
        kept, notes = NOTE.subn("", line)
        report.count("notes", notes)
        if notes and not kept.strip():
            continue  # a line that was only a layout note (［＃改ページ］) is not a paragraph break
        lines.append(kept.replace("｜", ""))
    return "\n".join(lines)


def without_aozora_header(text: str, report: FileReport) -> str:
    """The text after the dashed 【テキスト中に現れる記号について】 block (title and author lines go with it)."""
    rules = list(AOZORA_RULE.finditer(text, 0, 20_000))  # the header sits in the first few hundred lines
    for first, second in zip(rules, rules[1:]):
        if AOZORA_NOTATION in text[first.end():second.start()]:
            report.count("header_lines", text[:second.end()].count("\n") + 1)
            return text[second.end():]
    return text


def gaiji_replacement(note: str, report: FileReport) -> str:
    """The character a gaiji note names (by U+ code or JIS X 0213 plane-row-cell), or "" when it only
    describes the character."""
    code = note.rsplit("」", 1)[-1]  # the description 「…」 comes first; codes follow it
    char = unicode_char(code) or jis_char(code)
    report.count("gaiji_resolved" if char else "gaiji_dropped", 1)
    return char


def unicode_char(code: str) -> str:
    m = UNICODE_NOTE.search(code)
    return chr(int(m.group(1), 16)) if m and int(m.group(1), 16) <= 0x10FFFF else ""


def jis_char(code: str) -> str:
    """A JIS X 0213 character from its plane-row-cell (men-ku-ten), via EUC-JIS-2004 bytes."""
    m = JIS_NOTE.search(code)
    if not m:
        return ""
    plane, row, cell = map(int, m.groups())
    if not (1 <= row <= 94 and 1 <= cell <= 94):
        return ""
    raw = bytes([0xA0 + row, 0xA0 + cell])
    try:
        return (raw if plane == 1 else b"\x8f" + raw).decode("euc_jis_2004")
    except UnicodeDecodeError:
        return ""


# ----------------------------------------------------------------------------------------------
# HTML

VOID_TAGS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
             "track", "wbr"}
BLOCK_TAGS = {"address", "article", "aside", "blockquote", "dd", "div", "dl", "dt", "figcaption", "h1", "h2", "h3",
              "h4", "h5", "h6", "li", "main", "ol", "p", "pre", "section", "table", "tr", "ul"}
BOILERPLATE_TAGS = {"script", "style", "noscript", "template", "svg", "nav", "footer", "aside", "form", "iframe",
                    "button", "select", "head", "object", "canvas", "dialog", "menu"}
BOILERPLATE_ROLES = {"navigation", "banner", "contentinfo", "complementary", "search"}
BOILERPLATE_WORDS = {"nav", "navbar", "navigation", "menu", "breadcrumb", "breadcrumbs", "sidebar", "footer",
                     "share", "sharing", "social", "comment", "comments", "advert", "advertisement", "ad", "ads",
                     "banner", "cookie", "cookies", "related", "pagination", "pager", "widget"}
# Aozora Bunko's XHTML files: title/author, notation notes and bibliography around the text.
AOZORA_CLASSES = {"metadata", "notation_notes", "bibliographical_information", "after_text"}
CJK = "\u3000-\u30ff\u3400-\u9fff\uf900-\ufaff\uff00-\uffef"
SOURCE_LINE_BREAK = re.compile(f"(?<=[{CJK}])[ \t]*\n\\s*(?=[{CJK}])")
WHITESPACE = re.compile(r"\s+")


class MainText(HTMLParser):
    """Collects the readable text of a page: scripts, styles, navigation, headers/footers, sidebars and
    ruby readings dropped; the text of <main>/<article> preferred when the page has one."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.main_parts: list[str] = []
        self.skipping: list[str] = []   # open elements whose content is dropped
        self.main_depth = 0
        self.pre_depth = 0
        self.boilerplate = 0
        self.ruby = 0

    def emit(self, text: str):
        self.parts.append(text)
        if self.main_depth:
            self.main_parts.append(text)

    def handle_starttag(self, tag, attrs):
        if tag in VOID_TAGS:
            self.handle_startendtag(tag, attrs)
        elif self.skipping:
            self.skipping.append(tag)
        elif tag in ("rt", "rp"):
            self.skipping.append(tag)
            self.ruby += tag == "rt"
        elif self.is_boilerplate(tag, dict(attrs)):
            self.skipping.append(tag)
            self.boilerplate += 1
        else:
            self.main_depth += tag in ("main", "article")
            self.pre_depth += tag == "pre"
            if tag in BLOCK_TAGS:
                self.emit("\n")

    def handle_startendtag(self, tag, attrs):
        if self.skipping:
            return
        if tag in ("br", "hr"):
            self.emit("\n")
        elif tag == "img" and "gaiji" in (dict(attrs).get("class") or ""):
            self.emit(gaiji_char_from_alt(dict(attrs).get("alt") or ""))

    def handle_endtag(self, tag):
        if self.skipping:
            if tag in self.skipping:
                while self.skipping.pop() != tag:
                    pass
            return
        if tag in ("main", "article") and self.main_depth:
            self.main_depth -= 1
        if tag == "pre" and self.pre_depth:
            self.pre_depth -= 1
        if tag in BLOCK_TAGS:
            self.emit("\n")

    def handle_data(self, data):
        if self.skipping:
            return
        if not self.pre_depth:
            data = WHITESPACE.sub(" ", SOURCE_LINE_BREAK.sub("", data))
        self.emit(data)

    def is_boilerplate(self, tag: str, attrs: dict) -> bool:
        if tag == "header":
            return not self.main_depth  # a page header is navigation; an article's header is its title
        if tag in BOILERPLATE_TAGS or "hidden" in attrs or attrs.get("aria-hidden") == "true":
            return True
        if (attrs.get("role") or "").lower() in BOILERPLATE_ROLES:
            return True
        names = f"{attrs.get('class') or ''} {attrs.get('id') or ''}".lower()
        return bool(set(names.split()) & AOZORA_CLASSES or set(re.split(r"[\s_-]+", names)) & BOILERPLATE_WORDS)

    def text(self) -> str:
        main = "".join(self.main_parts)
        chosen = main if main.strip() else "".join(self.parts)
        return "\n".join(line.strip() for line in chosen.split("\n"))


def gaiji_char_from_alt(alt: str) -> str:
    """The character of an Aozora XHTML gaiji image, from its alt text (※(「…」、第3水準1-85-25))."""
    code = alt.rsplit("」", 1)[-1]
    return unicode_char(code) or jis_char(code)


def html_text(text: str, report: FileReport) -> str:
    parser = MainText()
    parser.feed(text)
    parser.close()
    report.count("html_boilerplate", parser.boilerplate)
    report.count("ruby", parser.ruby)
    return parser.text()


# ----------------------------------------------------------------------------------------------
# Markdown

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
RULE = re.compile(r"^ {0,3}([-*_])( *\1){2,} *$")
SETEXT_UNDERLINE = re.compile(r"^ {0,3}=+ *$")
LINK_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:\s*\S+")
TABLE_SEPARATOR = re.compile(r"^ *\|? *:?-{3,}:? *(\| *:?-{3,}:? *)*\|? *$")
HEADING = re.compile(r"^ {0,3}#{1,6}(?: +|$)(.*?)(?: +#+)? *$")
QUOTE = re.compile(r"^ *(?:> ?)+")
LIST_MARKER = re.compile(r"^ *(?:[-*+]|\d{1,9}[.)]) +(?:\[[ xX]\] +)?")
INLINE = (
    (re.compile(r"!\[[^\]]*\]\([^)]*\)"), ""),                      # images
    (re.compile(r"\[([^\]]+)\]\([^)]*\)"), r"\1"),                  # [text](url)
    (re.compile(r"\[([^\]]+)\]\[[^\]]*\]"), r"\1"),                 # [text][ref]
    (re.compile(r"<(?:https?|mailto):[^>\s]+>"), ""),                # autolinks
    (re.compile(r"</?[A-Za-z][^>\n]*>"), ""),                       # inline HTML tags
    (re.compile(r"(`+)(.+?)\1"), r"\2"),                            # inline code
    (re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1"), r"\2"),          # bold
    (re.compile(r"(?<!\*)\*(?=[^\s*])([^*\n]+?)(?<=\S)\*(?!\*)"), r"\1"),  # italic *x* (also inside Japanese)
    (re.compile(r"(?<!\w)_(?=\S)(.+?)(?<=\S)_(?!\w)"), r"\1"),      # italic _x_
    (re.compile(r"~~(.+?)~~"), r"\1"),                              # strikethrough
    (re.compile(r"\\([\\`*_{}\[\]()#+\-.!|>~])"), r"\1"),           # escapes
)


def markdown_text(text: str, keep_code: bool, report: FileReport) -> str:
    """Markdown as plain text: headings, emphasis, links, lists, quotes and tables without their
    syntax; front matter and link definitions dropped; fenced code blocks dropped unless `keep_code`."""
    lines = without_front_matter(text.split("\n"))
    out: list[str] = []
    fence = ""
    for line in lines:
        opener = FENCE.match(line)
        if fence:
            if opener and opener.group(1)[0] == fence[0] and len(opener.group(1)) >= len(fence):
                fence = ""
            elif keep_code:
                out.append(line)
            continue
        if opener:
            fence = opener.group(1)
            report.count("code_blocks", 1)
            continue
        if RULE.match(line) or SETEXT_UNDERLINE.match(line):
            out.append("")
            continue
        if LINK_DEFINITION.match(line) or TABLE_SEPARATOR.match(line):
            continue
        out.append(markdown_line(line))
    return "\n".join(out)


def without_front_matter(lines: list[str]) -> list[str]:
    if lines and lines[0].strip() == "---":
        for i, line in enumerate(lines[1:100], start=1):
            if line.strip() in ("---", "..."):
                return lines[i + 1:]
    return lines


def markdown_line(line: str) -> str:
    heading = HEADING.match(line)
    if heading:
        line = heading.group(1)
    line = LIST_MARKER.sub("", QUOTE.sub("", line))
    if line.lstrip().startswith("|"):
        line = " ".join(cell.strip() for cell in line.strip().strip("|").split("|"))
    for pattern, replacement in INLINE:
        line = pattern.sub(replacement, line)
    return line


# ----------------------------------------------------------------------------------------------
# Records: jsonl, json, csv

# Column (key) names, compared case-insensitively; earlier names win when a record has several.
QUESTION_KEYS = ("question", "instruction", "prompt", "query", "質問", "問い", "input")
ANSWER_KEYS = ("answer", "output", "response", "completion", "回答", "答え")
TEXT_KEYS = ("text", "content", "body", "本文", "テキスト")
CONTEXT_KEY = "input"  # Alpaca style: instruction + input (context) -> output


@dataclass
class Columns:
    """Which keys of a record hold the question, answer, extra context, or a plain text."""
    question: str | None = None
    answer: str | None = None
    context: str | None = None
    text: str | None = None

    @property
    def recognised(self) -> bool:
        return bool(self.question and self.answer) or bool(self.text)


def columns_of(names) -> Columns:
    """The roles of a header's (or a record's) names, matched case-insensitively."""
    by_lower = {str(n).strip().lower(): n for n in names if n is not None}

    def first(keys):
        return next((by_lower[k] for k in keys if k in by_lower), None)

    question = first(QUESTION_KEYS)
    context = by_lower.get(CONTEXT_KEY)
    return Columns(question, first(ANSWER_KEYS), context if context != question else None, first(TEXT_KEYS))


@dataclass
class RecordProblems:
    """Records that were left out, summarised into at most two warnings per file."""
    bad_json: list[tuple[int, str]] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)   # where: "line 3", "row 7", "record 2"
    keys: set[str] = field(default_factory=set)

    def warn_into(self, report: FileReport):
        if self.bad_json:
            line, error = self.bad_json[0]
            report.warn(message("bad_json_lines", count=len(self.bad_json), line=line, error=error))
        if self.incomplete:
            where = self.incomplete[0]
            report.warn(message("incomplete_records", count=len(self.incomplete), where=where,
                                where_ja=japanese_where(where)))


def japanese_where(where: str) -> str:
    kind, n = where.split()
    return {"line": f"{n}行目", "row": f"{n}行目", "record": f"{n}件目"}[kind]


def record_documents(record, where: str, name: str, options: ReadOptions, report: FileReport,
                     problems: RecordProblems) -> list[Document]:
    """The documents of one jsonl/json/csv record: a text, a Q&A pair, or the turns of a chat."""
    doc_name = f"{name}#{where.split()[-1]}"
    if isinstance(record, str):
        return text_documents(record, doc_name, options, report)
    if not isinstance(record, dict):
        problems.incomplete.append(where)
        return []
    problems.keys.update(map(str, record))
    if isinstance(record.get("messages"), list) or isinstance(record.get("conversations"), list):
        pairs = chat_pairs(record.get("messages") or record.get("conversations"))
        if len(pairs) > 1 and message("multi_turn").en not in report.warnings:
            report.warn(message("multi_turn"))
        docs = [d for q, a in pairs for d in qa_documents(q, a, doc_name, options, report)]
    else:
        docs = columns_documents(record, columns_of(record), doc_name, options, report)
    if not docs:
        problems.incomplete.append(where)
    return docs


def columns_documents(record: dict, columns: Columns, doc_name: str, options: ReadOptions,
                      report: FileReport) -> list[Document]:
    if columns.question and columns.answer:
        question = cell_text(record.get(columns.question))
        if columns.context and cell_text(record.get(columns.context)).strip():
            question = f"{question}\n\n{cell_text(record.get(columns.context))}"
        docs = qa_documents(question, cell_text(record.get(columns.answer)), doc_name, options, report)
        if docs or not columns.text:
            return docs
    if columns.text:
        return text_documents(cell_text(record.get(columns.text)), doc_name, options, report)
    return []


def cell_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, list):  # chat content given as parts: [{"type": "text", "text": …}]
        return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in value)
    return str(value)


def chat_pairs(messages: list) -> list[tuple[str, str]]:
    """(user, assistant) pairs of a chat: each assistant message with the user message just before it.
    System messages are left out. Accepts role/content (OpenAI) and from/value (ShareGPT) keys."""
    pairs, question = [], None
    for m in messages:
        if not isinstance(m, dict):
            continue
        role = str(m.get("role") or m.get("from") or "").lower()
        content = cell_text(m.get("content", m.get("value")))
        if role in ("user", "human"):
            question = content
        elif role in ("assistant", "gpt", "model", "bot") and question is not None:
            pairs.append((question, content))
            question = None
    return pairs


def qa_documents(question: str, answer: str, name: str, options: ReadOptions, report: FileReport) -> list[Document]:
    # Normalize the parts, then template: NFKC on the finished prompt would turn the template's
    # full-width colons into ASCII ones and the prompt would differ from the one used at generation.
    question, answer = normalized(question, options.nfkc, report), normalized(answer, options.nfkc, report)
    if not question or not answer:
        return []
    return [qa_document(question, answer, name=name)]


def text_documents(text: str, name: str, options: ReadOptions, report: FileReport) -> list[Document]:
    text = normalized(text, options.nfkc, report)
    return [Document(name, text)] if text else []


def jsonl_documents(text: str, name: str, options: ReadOptions, report: FileReport) -> list[Document]:
    docs: list[Document] = []
    problems = RecordProblems()
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            problems.bad_json.append((number, err.msg))
            continue
        docs += record_documents(record, f"line {number}", name, options, report, problems)
    if not docs:
        raise Skip(records_reason(problems))
    problems.warn_into(report)
    return docs


def records_reason(problems: RecordProblems) -> Message:
    """Why a records file gave no document."""
    if problems.bad_json and not problems.keys and not problems.incomplete:
        line, error = problems.bad_json[0]
        return message("no_json_line", line=line, error=error)
    if problems.keys and not columns_of(problems.keys).recognised:
        return message("no_columns", found=", ".join(sorted(problems.keys)[:12]))
    return message("nothing_left", what="no record has both a question and an answer, or a text",
                   what_ja="質問と回答、またはテキストがそろったレコードがありません")


def json_documents(text: str, name: str, options: ReadOptions, report: FileReport) -> list[Document]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise Skip(message("not_json", error=f"{err.msg} at line {err.lineno}")) from None
    records = json_records(data)
    docs: list[Document] = []
    problems = RecordProblems()
    for number, record in enumerate(records, start=1):
        docs += record_documents(record, f"record {number}", name, options, report, problems)
    if not docs:
        raise Skip(records_reason(problems))
    problems.warn_into(report)
    return docs


# Keys under which JSON files commonly keep their list of records.
RECORD_LIST_KEYS = ("data", "records", "items", "examples", "rows", "qa", "faq")


def json_records(data) -> list:
    """The records of a JSON document: a list, a list under a common key, or the value itself."""
    if isinstance(data, list):
        return data
    if isinstance(data, dict) and not columns_of(data).recognised and "messages" not in data:
        for key in RECORD_LIST_KEYS:
            if isinstance(data.get(key), list):
                return data[key]
    return [data]


def csv_documents(text: str, name: str, options: ReadOptions, report: FileReport) -> list[Document]:
    rows = csv.reader(io.StringIO(text, newline=""), delimiter=csv_delimiter(text, name))
    header = next(rows, [])
    columns = columns_of(header)
    if not columns.recognised:
        found = ", ".join(h.strip() for h in header if h.strip())[:200] or "none"
        raise Skip(message("no_columns", found=found))
    docs: list[Document] = []
    problems = RecordProblems()
    for number, row in enumerate(rows, start=2):
        if not any(cell.strip() for cell in row):
            continue
        record = dict(zip(header, row))
        docs += record_documents(record, f"row {number}", name, options, report, problems)
    problems.keys.clear()
    if not docs:
        raise Skip(message("nothing_left", what="no row has both a question and an answer, or a text",
                           what_ja="質問と回答、またはテキストがそろった行がありません"))
    problems.warn_into(report)
    return docs


def csv_delimiter(text: str, name: str) -> str:
    """Tab for .tsv files and for headers with tabs but no commas; comma otherwise."""
    header = text.split("\n", 1)[0]
    if name.lower().endswith(".tsv") or ("\t" in header and "," not in header):
        return "\t"
    return ","


# ----------------------------------------------------------------------------------------------
# One input


def file_format(name: str) -> str | None:
    return SUFFIX_FORMATS.get(PurePosixPath(name.lower()).suffix)


def bytes_result(name: str, raw: bytes, options: ReadOptions, fmt: str | None = None) -> FileResult:
    """Read one file's bytes. `fmt` overrides the format implied by the name."""
    report = FileReport(name, fmt or file_format(name) or "unknown")
    try:
        docs = bytes_documents(name, raw, options, report, fmt)
    except Skip as skip:
        report.skip(skip.message)
        return FileResult(report)
    report.documents = len(docs)
    report.qa_pairs = sum(1 for d in docs if d.prompt)
    report.characters = sum(len(d.prompt) + len(d.text) for d in docs)
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
    if report.format == "unknown":
        suffix = PurePosixPath(name).suffix or "(no extension)"
        raise Skip(message("unsupported", suffix=suffix, accepted=ACCEPTED))
    text, report.encoding = decoded_text(raw, options.encoding_for(name))
    if not text.strip():
        raise Skip(message("blank"))
    docs = text_format_documents(unified_newlines(text), name, options, report)
    for doc in docs:
        doc.encoding = report.encoding
    if not docs:
        stripped = ", ".join(report.stripped) or "only markup"
        raise Skip(message("nothing_left", what=stripped, what_ja=f"除いたもの：{stripped}"))
    replaced = report.stripped.get("replacement_characters", 0)
    if replaced:
        report.warn(message("replacement_removed", count=replaced))
    return docs


def text_format_documents(text: str, name: str, options: ReadOptions, report: FileReport) -> list[Document]:
    """The documents of a decoded text in the report's format."""
    if report.format == "jsonl":
        return jsonl_documents(text, name, options, report)
    if report.format == "json":
        return json_documents(text, name, options, report)
    if report.format == "csv":
        return csv_documents(text, name, options, report)
    if report.format == "html":
        text = html_text(text, report)
    elif report.format == "markdown":
        text = markdown_text(text, options.keep_code, report)
    elif looks_like_aozora(text):
        report.format = "aozora"
        text = aozora_text(text, report)
    return text_documents(text, name, options, report)


def pasted_result(text: str, name: str, options: ReadOptions) -> FileResult:
    """Pasted text: plain text (Aozora-style markup is cleaned as in files)."""
    result = bytes_result(name, text.encode("utf-8"), options, fmt="text")
    result.report.encoding = None  # pasted text has no encoding of its own
    return result


# ----------------------------------------------------------------------------------------------
# Folders and zips


def is_ignored(name: str) -> bool:
    parts = PurePosixPath(name.replace("\\", "/")).parts
    return any(p.startswith(".") or p == "__MACOSX" for p in parts) or parts[-1].lower() in IGNORED_NAMES


def path_results(path: Path, options: ReadOptions) -> list[FileResult]:
    """Results of a path given by the user: a file, a zip, or a folder walked recursively."""
    if path.is_dir():
        files = [p for p in sorted(path.rglob("*")) if p.is_file() and not is_ignored(str(p.relative_to(path)))]
        results = [r for f in files for r in file_results(f, options, depth=0)]
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
    return results + container_report(name, "zip", results)


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
    """The member's name; names stored without the UTF-8 flag by Japanese Windows are cp932, which
    zipfile has read as cp437."""
    if member.flag_bits & 0x800:
        return member.filename
    try:
        return member.filename.encode("cp437").decode("cp932")
    except (UnicodeEncodeError, UnicodeDecodeError):
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
    report.documents = len(kept)
    report.qa_pairs = sum(1 for d in kept if d.prompt)
    report.characters = sum(len(d.prompt) + len(d.text) for d in kept)


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
