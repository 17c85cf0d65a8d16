"""Aozora Bunko text: header block, 底本 footer, ruby, editor notes and gaiji notes removed."""
from __future__ import annotations

import re

from ..document import Document
from .common import FileReport, ReadOptions, text_documents


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


def aozora_documents(text: str, name: str, options: ReadOptions, report: FileReport) -> list[Document]:
    return text_documents(aozora_text(text, report), name, options, report)
