"""HTML to text, for saved web pages and for the bodies of blog posts.

A page keeps its main text only: navigation, headers, footers, sidebars, comments, share buttons,
related-post lists and metadata are dropped, and when the page marks its entry body (`entry-content`,
`article-body`, `entryBody`, itemprop="articleBody", as Hatena Blog, WordPress, livedoor, Ameba and
note pages do) only that body is kept; otherwise <main>/<article>, otherwise the whole body.
A post body (a fragment from an export) keeps everything but the same non-text parts.

Both: paragraphs (p, headings, lists, quotes) separated by a blank line, list items and <br> as
lines, link text kept, URLs, images with their captions, embeds (iframes, video, tweets, link
cards), scripts, styles, comments (<!-- wp:… -->) and ruby readings dropped; code blocks (<pre>)
dropped unless kept on purpose.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import NamedTuple

from ..document import Document
from .aozora import jis_char, unicode_char
from .common import FileReport, ReadOptions, normalized, text_documents

VOID_TAGS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
             "track", "wbr"}
# Paragraph-level elements: a blank line before and after. Line-level ones: a line break.
PARAGRAPH_TAGS = {"address", "blockquote", "dl", "figure", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "ol", "p", "pre",
                  "table", "ul", "details"}
LINE_TAGS = {"article", "aside", "caption", "dd", "div", "dt", "footer", "header", "li", "main", "section", "summary",
             "tr"}
CELL_TAGS = {"td", "th"}
# Never text, in pages and posts alike.
DROPPED_TAGS = {"script", "style", "noscript", "template", "svg", "iframe", "object", "embed", "video", "audio",
                "canvas", "map", "head", "button", "select", "textarea", "form", "figcaption", "dialog"}
# Pages only: the parts around the article.
PAGE_TAGS = {"nav", "footer", "aside", "menu"}
PAGE_ROLES = {"navigation", "banner", "contentinfo", "complementary", "search"}
PAGE_WORDS = {"nav", "navbar", "navigation", "menu", "breadcrumb", "breadcrumbs", "sidebar", "footer", "side",
              "share", "sharing", "social", "comment", "comments", "advert", "advertisement", "ad", "ads", "banner",
              "cookie", "cookies", "related", "pagination", "pager", "paging", "widget", "meta", "date", "pubdate",
              "byline", "author", "category", "categories", "tags", "profile", "reaction", "like", "likes", "star",
              "bookmark", "reblog", "follow", "recommend", "screen"}
# Classes of the element holding a whole entry (hAtom, microformats2).
ENTRY_CLASSES = {"hentry", "h-entry", "entry"}
# Class-name stems that mark the same parts inside longer names (jp-relatedposts, skin-entryComments).
PAGE_STEMS = ("related", "sharing", "comment", "sidebar", "breadcrumb", "pagination")
# Embedded content: link cards, tweets, videos (pages and posts).
EMBED_WORDS = {"embed", "tweet", "twitter", "instagram", "blogcard", "linkcard", "ogp", "ogpcard", "youtube"}
# Tables of contents (Hatena's [:contents], WordPress plugins' toc_container, ez-toc): the headings
# again, as links. Hatena's citation under an embed: the linked page's address.
CONTENTS_WORDS = {"toc"}
# Aozora Bunko's XHTML files: title/author, notation notes and bibliography around the text.
AOZORA_CLASSES = {"metadata", "notation_notes", "bibliographical_information", "after_text"}
# The element holding a post's text on blog platforms' pages (class or id).
ENTRY_BODY = re.compile(r"(?:^|[\s_-])(?:entry|article|post|textnote)[-_]?(?:body|content|text|more)(?:$|[\s_-])")
# <pre> is a code block unless it says it is verse or preformatted prose (WordPress blocks).
PROSE_PRE = re.compile(r"verse|preformatted|poem", re.I)
CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")
NAME_SPLIT = re.compile(r"[\s_-]+")
CJK = "\u3000-\u30ff\u3400-\u9fff\uf900-\ufaff\uff00-\uffef"
SOURCE_LINE_BREAK = re.compile(f"(?<=[{CJK}])[ \t]*\n\\s*(?=[{CJK}])")
WHITESPACE = re.compile(r"\s+")
URL = re.compile(r"[ \t]*(?:https?|ftp)://[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+[ \t]*")
CJK_CHAR = re.compile(f"[{CJK}]")


@dataclass
class Element:
    """An open element and what it means for the text inside it."""
    tag: str
    dropped: bool = False
    main: bool = False      # <main> or <article>
    body: bool = False      # a blog platform's entry body
    pre: bool = False
    link: bool = False


class Token(NamedTuple):
    """A piece of text, or a break (1: new line, 2: new paragraph, -1: <br>), and where it lies."""
    value: str | int
    main: bool      # in <main>/<article>
    body: bool      # in an entry body
    link: bool      # link text


class HtmlText(HTMLParser):
    """Collects text as tokens (text, or a break of 1 = new line / 2 = new paragraph), each marked
    with whether it lies in <main>/<article> and in an entry body; `text()` renders the best part."""

    def __init__(self, page: bool, keep_code: bool = False):
        super().__init__(convert_charrefs=True)
        self.page, self.keep_code = page, keep_code
        self.open: list[Element] = []
        self.tokens: list[Token] = []
        self.dropped = self.main = self.body = self.pre = self.link = 0
        self.counts = {"html_boilerplate": 0, "ruby": 0, "code_blocks": 0, "embeds": 0, "urls": 0, "titles": 0,
                       "footnote_marks": 0}
        self.in_title, self.title_parts, self.entry_title = False, [], None
        self.published = ""  # microformats' dt-published time (Medium posts), ISO 8601

    # -- elements

    def handle_starttag(self, tag, attrs):
        attrs = {k: v or "" for k, v in attrs}
        if tag in VOID_TAGS:
            return self.handle_startendtag(tag, attrs)
        if tag == "title":
            self.in_title = True
        if tag == "time" and "dt-published" in attrs.get("class", "").split() and not self.published:
            self.published = attrs.get("datetime", "")
        element = Element(tag)
        if self.dropped:
            element.dropped = True
        else:
            why = self.drop_reason(tag, attrs)
            if why:
                element.dropped = True
                self.counts[why] += 1
            else:
                element.main = self.page and tag in ("main", "article")
                element.body = self.page and not self.body and is_entry_body(attrs)
                element.pre = tag == "pre"
                element.link = tag == "a"
                self.brk(tag)
                if tag in CELL_TAGS:
                    self.emit(" ")
                if is_entry_title(attrs) and self.entry_title is None:
                    self.entry_title = len(self.tokens)
        self.push(element)

    def handle_startendtag(self, tag, attrs):
        attrs = attrs if isinstance(attrs, dict) else {k: v or "" for k, v in attrs}
        if self.dropped:
            return
        if tag == "br":
            self.add(-1)
        elif tag == "hr":
            self.brk("p")
        elif tag == "img" and "gaiji" in attrs.get("class", ""):
            self.emit(gaiji_char_from_alt(attrs.get("alt", "")))

    def handle_endtag(self, tag):
        if tag == "title":
            self.in_title = False
        if not any(e.tag == tag for e in self.open):
            return  # a stray end tag
        while self.open:
            element = self.pop()
            if element.tag == tag:
                break
        if not self.dropped:
            self.brk(tag)

    def push(self, element: Element):
        self.open.append(element)
        self.dropped += element.dropped
        self.main += element.main
        self.body += element.body
        self.pre += element.pre

    def pop(self) -> Element:
        element = self.open.pop()
        self.dropped -= element.dropped
        self.main -= element.main
        self.body -= element.body
        self.pre -= element.pre
        self.link -= element.link
        return element

    def drop_reason(self, tag: str, attrs: dict) -> str | None:
        """Why this element's content is left out (a key of `counts`), or None to keep it."""
        if tag in ("html", "body"):
            return None  # their classes describe the whole page (single-post, category-日記, wp-embed-responsive)
        if tag in ("rt", "rp"):
            return "ruby" if tag == "rt" else "html_boilerplate"
        if tag == "pre" and not self.keep_code and not PROSE_PRE.search(attrs.get("class", "")):
            return "code_blocks"
        if tag in DROPPED_TAGS or "hidden" in attrs or attrs.get("aria-hidden") == "true":
            return "html_boilerplate"
        if "graf--title" in attrs.get("class", "").split():
            return "titles"  # Medium repeats the title at the top of the body
        words = class_words(attrs)
        if words & EMBED_WORDS or "embedded-service" in attrs:
            return "embeds"
        if words & CONTENTS_WORDS or {"table", "contents"} <= words or (tag == "cite" and "citation" in words):
            return "html_boilerplate"
        if is_footnote_mark(tag, attrs, words):
            return "footnote_marks"
        if words & AOZORA_CLASSES or set((attrs.get("class") or "").lower().split()) & AOZORA_CLASSES:
            return "html_boilerplate"
        if self.page and self.is_page_furniture(tag, attrs, words):
            return "html_boilerplate"
        return None

    def is_page_furniture(self, tag: str, attrs: dict, words: set[str]) -> bool:
        """Navigation, sidebars, footers, comments, share buttons, metadata: the page around the text."""
        if is_entry_body(attrs) or tag in ("main", "article") or set(attrs.get("class", "").split()) & ENTRY_CLASSES:
            return False  # their classes describe the entry (date-first, category-日記, tag-lake)
        if tag == "header":
            return not self.main  # a page header is navigation; an article's header is its title
        if tag in PAGE_TAGS or (attrs.get("role") or "").lower() in PAGE_ROLES:
            return True
        return bool(words & PAGE_WORDS) or any(stem in word for word in words for stem in PAGE_STEMS)

    # -- text

    def brk(self, tag: str):
        if tag in PARAGRAPH_TAGS:
            self.add(2)
        elif tag in LINE_TAGS:
            self.add(1)

    def emit(self, text: str):
        self.add(text)

    def add(self, value: str | int):
        self.tokens.append(Token(value, self.main > 0, self.body > 0, self.link > 0))

    def handle_data(self, data):
        if self.in_title:
            self.title_parts.append(data)
        if self.dropped:
            return
        if not self.pre:
            data = WHITESPACE.sub(" ", SOURCE_LINE_BREAK.sub("", data))
            data, urls = without_urls(data)
            self.counts["urls"] += urls
        self.emit(data)

    def text(self) -> str:
        """The entry bodies when the page has any, else <main>/<article>, else everything but the
        lines that are only links (menus) or a copyright notice."""
        if self.page:
            for chosen in ([t for t in self.tokens if t.body], [t for t in self.tokens if t.main]):
                if rendered(chosen).strip():
                    return rendered(chosen)
            return rendered(self.tokens, furniture_lines=True)
        return rendered(self.tokens)

    def title(self) -> str:
        """The entry's title (hAtom `entry-title`), else the page's <title>."""
        if self.entry_title is not None:  # the text from the title element's start to the next break
            parts = []
            for value, *_ in self.tokens[self.entry_title:]:
                if isinstance(value, int):
                    if parts and "".join(parts).strip():
                        break
                    continue
                parts.append(value)
            if "".join(parts).strip():
                return WHITESPACE.sub(" ", "".join(parts)).strip()
        return WHITESPACE.sub(" ", "".join(self.title_parts)).strip()


def rendered(tokens: list[Token], furniture_lines: bool = False) -> str:
    """Text tokens joined, each break as the largest run of newlines asked for since the last text
    (a <br> adds one); whitespace between blocks dropped, lines stripped. With `furniture_lines`,
    lines that are nothing but link text, and copyright notices, are left out."""
    lines: list[list[Token]] = [[]]
    pending = 0
    for token in tokens:
        if isinstance(token.value, int):
            pending = pending + 1 if token.value < 0 else max(pending, token.value)
        elif not token.value.strip() and "\n" not in token.value:
            if not pending and lines[-1]:
                lines[-1].append(token._replace(value=" "))  # a space between inline elements
        else:
            if pending and any(line for line in lines):
                lines += [[] for _ in range(pending)]
            pending = 0
            for i, piece in enumerate(token.value.split("\n")):  # newlines only come from <pre>
                if i:
                    lines.append([])
                lines[-1].append(token._replace(value=piece))
    if furniture_lines:
        lines = [line for line in lines if not is_furniture_line(line)]
    return "\n".join("".join(t.value for t in line).strip() for line in lines)


COPYRIGHT = re.compile(r"^\s*(?:copyright|\(c\)|©)", re.I)


def is_furniture_line(line: list[Token]) -> bool:
    text = "".join(t.value for t in line)
    if not text.strip():
        return False
    return all(t.link or not t.value.strip() for t in line) or bool(COPYRIGHT.match(text))


def without_urls(text: str) -> tuple[str, int]:
    """Bare URLs removed, with the spaces around them; one space stays between two words of
    spaced writing ("see https://… for" -> "see for"), none next to Japanese."""
    def replacement(m: re.Match) -> str:
        before, after = text[m.start() - 1:m.start()], text[m.end():m.end() + 1]
        spaced = m.group().startswith((" ", "\t")) and m.group().endswith((" ", "\t"))
        keep_space = spaced and before and after and not CJK_CHAR.match(before) and not CJK_CHAR.match(after)
        return " " if keep_space else ""
    return URL.subn(replacement, text)


# Classes that describe a neighbour, not the element: Medium marks each paragraph with the kind of the
# one before it (graf-after--mixtapeEmbed on the paragraph after a link card).
NEIGHBOUR_CLASS = re.compile(r"\bgraf-after--\S*")


def class_words(attrs: dict) -> set[str]:
    """The words of an element's class and id: split at spaces, hyphens, underscores and camelCase."""
    classes = NEIGHBOUR_CLASS.sub(" ", attrs.get("class") or "")
    names = CAMEL.sub(" ", f"{classes} {attrs.get('id') or ''}")
    return {w for w in NAME_SPLIT.split(names.lower()) if w}


def is_entry_body(attrs: dict) -> bool:
    if (attrs.get("itemprop") or "") == "articleBody" or attrs.get("data-field") == "body":
        return True
    if "e-content" in (attrs.get("class") or "").split():  # microformats2
        return True
    return bool(ENTRY_BODY.search(f"{attrs.get('class') or ''} {attrs.get('id') or ''}".lower()))


def is_footnote_mark(tag: str, attrs: dict, words: set[str]) -> bool:
    """A footnote's number, in the text or before the note, and the way back: Hatena's *1 links
    (name="fn-…", class footnote-number) and the colon after them, WordPress's <sup data-fn> and ↩︎
    links. The notes' own text stays."""
    if "footnote" in words and words & {"number", "delimiter", "backref", "ref"}:
        return True
    if tag == "sup" and "data-fn" in attrs:
        return True
    return tag == "a" and ((attrs.get("name") or "").startswith("fn-")
                           or (attrs.get("aria-label") or "").lower().startswith("jump to footnote"))


def is_entry_title(attrs: dict) -> bool:
    classes = (attrs.get("class") or "").split()
    return "entry-title" in classes or "p-name" in classes or (attrs.get("itemprop") or "") == "headline"


def gaiji_char_from_alt(alt: str) -> str:
    """The character of an Aozora XHTML gaiji image, from its alt text (※(「…」、第3水準1-85-25))."""
    code = alt.rsplit("」", 1)[-1]
    return unicode_char(code) or jis_char(code)


def parsed(text: str, page: bool, keep_code: bool, report: FileReport) -> HtmlText:
    parser = HtmlText(page, keep_code)
    parser.feed(text)
    parser.close()
    for what, n in parser.counts.items():
        report.count(what, n)
    return parser


def html_text(text: str, report: FileReport, keep_code: bool = False) -> str:
    """The main text of a saved page."""
    return parsed(text, True, keep_code, report).text()


def fragment_text(text: str, report: FileReport, keep_code: bool = False) -> str:
    """The text of a post body (an HTML fragment): everything but the non-text parts."""
    return parsed(text, False, keep_code, report).text()


# Block tags after or before which a newline in a post's source is only layout, as WordPress's
# wpautop and Movable Type's "convert breaks" treat them.
BLOCK_TAG = (r"</?(?:p|div|h[1-6]|ul|ol|li|dl|dt|dd|blockquote|pre|table|thead|tbody|tr|td|th|figure|figcaption|hr|"
             r"section|article|aside|header|footer|details|summary|address)\b[^>]*>")
ENDS_WITH_BLOCK = re.compile(BLOCK_TAG + r"\s*$", re.I)
STARTS_WITH_BLOCK = re.compile(r"^\s*" + BLOCK_TAG, re.I)


def with_line_breaks(html: str) -> str:
    """A post written with plain newlines (WordPress's classic editor, Movable Type with "convert
    breaks"): each newline that is not next to a block tag becomes <br>, so paragraphs (blank lines)
    and lines survive."""
    parts = html.split("\n")
    out = [parts[0]]
    for before, after in zip(parts, parts[1:]):
        layout = ENDS_WITH_BLOCK.search(before) or STARTS_WITH_BLOCK.match(after)
        out.append(("\n" if layout else "<br>\n") + after)
    return "".join(out)


def html_documents(text: str, name: str, options: ReadOptions, report: FileReport) -> list[Document]:
    parser = parsed(text, True, options.keep_code, report)
    body = parser.text()
    title = normalized(parser.title(), options.nfkc)
    if options.titles and title and not normalized(body, options.nfkc).startswith(title):
        body = f"{title}\n{body}"
    docs = text_documents(body, name, options, report)
    for doc in docs:
        doc.title = title
    return docs
