"""Plain text and Markdown: Markdown syntax removed, code blocks dropped unless asked for."""
from __future__ import annotations

import re

from ..document import Document
from .common import FileReport, ReadOptions, text_documents


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


def markdown_documents(text: str, name: str, options: ReadOptions, report: FileReport) -> list[Document]:
    return text_documents(markdown_text(text, options.keep_code, report), name, options, report)
