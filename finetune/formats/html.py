"""Saved web pages: the main text, without navigation, sidebars, footers, scripts and ruby readings."""
from __future__ import annotations

import re
from html.parser import HTMLParser

from .aozora import jis_char, unicode_char
from ..document import Document
from .common import FileReport, ReadOptions, text_documents


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


def html_documents(text: str, name: str, options: ReadOptions, report: FileReport) -> list[Document]:
    return text_documents(html_text(text, report), name, options, report)
