"""Plain text and Markdown: Markdown syntax removed, code blocks dropped unless asked for.

Markdown posts of static-site generators and writing services (Hugo, Jekyll, Zenn, Qiita) start with
front matter, YAML between `---` lines or TOML between `+++` lines; it gives the post's title, date
and whether it is a draft (`draft: true`, `published: false`, Qiita's `private: true` or
`ignorePublish: true`, a Qiita CLI file with `id: null`, a publication date still to come or an
expiry date gone by) or not a post at all (Hugo's `_index.md` section pages, `layout: page`, Hugo's
headless bundles), and its author (Jekyll's `author: name`, or a list `authors: [a, b]` written on
one line, as Hugo's taxonomy is), and is not text. Hugo shortcodes ({{< … >}}, {{% … %}}), Liquid tags
({% … %}, {{ … }}), HTML comments, Zenn/Qiita `:::message` / `:::details` / `:::note` fences and Zenn
embeds (@[youtube](…)) are removed from every Markdown file; what they enclose stays, except code
(`highlight`), which follows keep_code like fenced code.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from ..document import Document
from .common import FileReport, ReadOptions, author_left_out, post_document, text_documents
from .html import without_urls

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
RULE = re.compile(r"^ {0,3}([-*_])( *\1){2,} *$")
SETEXT_UNDERLINE = re.compile(r"^ {0,3}=+ *$")
LINK_DEFINITION = re.compile(r"^ {0,3}\[[^^\]][^\]]*\]:\s*\S+")
FOOTNOTE_DEFINITION = re.compile(r"^ {0,3}\[\^[^\]]+\]:\s*")  # [^1]: the note's text, which stays
TABLE_SEPARATOR = re.compile(r"^ *\|? *:?-{3,}:? *(\| *:?-{3,}:? *)*\|? *$")
HEADING = re.compile(r"^ {0,3}#{1,6}(?: +|$)(.*?)(?: +#+)? *$")
QUOTE = re.compile(r"^ *(?:> ?)+")
LIST_MARKER = re.compile(r"^ *(?:[-*+]|\d{1,9}[.)]) +(?:\[[ xX]\] +)?")
INLINE = (
    (re.compile(r"@\[[\w-]+\]\([^)]*\)"), ""),                      # Zenn embeds @[youtube](id)
    (re.compile(r"!\[[^\]]*\]\([^)]*\)"), ""),                      # images
    (re.compile(r"\[([^\]]+)\]\([^)]*\)"), r"\1"),                  # [text](url)
    (re.compile(r"\[([^\]]+)\]\[[^\]]*\]"), r"\1"),                 # [text][ref]
    (re.compile(r"\[\^[^\]\s]+\]"), ""),                            # footnote marks [^1]
    (re.compile(r"<(?:https?|mailto):[^>\s]+>"), ""),                # autolinks
    (re.compile(r"</?[A-Za-z][^>\n]*>"), ""),                       # inline HTML tags
    (re.compile(r"(`+)(.+?)\1"), r"\2"),                            # inline code
    (re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1"), r"\2"),          # bold
    (re.compile(r"(?<!\*)\*(?=[^\s*])([^*\n]+?)(?<=\S)\*(?!\*)"), r"\1"),  # italic *x* (also inside Japanese)
    (re.compile(r"(?<!\w)_(?=\S)(.+?)(?<=\S)_(?!\w)"), r"\1"),      # italic _x_
    (re.compile(r"~~(.+?)~~"), r"\1"),                              # strikethrough
    (re.compile(r"\\([\\`*_{}\[\]()#+\-.!|>~])"), r"\1"),           # escapes
)
# Zenn (:::message, :::details title) and Qiita (:::note info) boxes; `::::` when nested.
BOX_OPEN = re.compile(r"^ {0,3}:{3,}\s*(message|details|note)\b\s*(?:alert|info|warn)?\s*(.*)$")
BOX_CLOSE = re.compile(r"^ {0,3}:{3,}\s*$")
HTML_COMMENT = re.compile(r"<!--.*?-->", re.S)
# Hugo's highlight shortcode and Jekyll's highlight tag enclose code.
CODE_SHORTCODE = re.compile(r"\{\{[<%]\s*highlight\b.*?[>%]\}\}(.*?)\{\{[<%]\s*/\s*highlight\s*[>%]\}\}", re.S)
CODE_LIQUID = re.compile(r"\{%-?\s*highlight\b.*?-?%\}(.*?)\{%-?\s*endhighlight\s*-?%\}", re.S)
LIQUID_RAW = re.compile(r"\{%-?\s*raw\s*-?%\}(.*?)\{%-?\s*endraw\s*-?%\}", re.S)
LIQUID_COMMENT = re.compile(r"\{%-?\s*comment\s*-?%\}.*?\{%-?\s*endcomment\s*-?%\}", re.S)
SHORTCODE = re.compile(r"\{\{[<%].*?[>%]\}\}", re.S)           # {{< figure src=… >}}, {{% note %}}
LIQUID = re.compile(r"\{%.*?%\}|\{\{.*?\}\}", re.S)              # {% include … %}, {{ page.title }}


def markdown_text(text: str, keep_code: bool, report: FileReport) -> str:
    """Markdown as plain text: headings, emphasis, links, lists, quotes and tables without their
    syntax; front matter, link definitions, shortcodes, Liquid tags, HTML comments and box fences
    dropped; fenced code blocks dropped unless `keep_code`."""
    text = without_templating(split_front_matter(text)[1], keep_code, report)
    out: list[str] = []
    fence = ""
    for line in text.split("\n"):
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
        box = BOX_OPEN.match(line)
        if box or BOX_CLOSE.match(line):
            report.count("box_fences", 1)
            out.append(markdown_line(box.group(2)) if box and box.group(1) == "details" else "")
            continue
        if RULE.match(line) or SETEXT_UNDERLINE.match(line):
            out.append("")
            continue
        if LINK_DEFINITION.match(line) or TABLE_SEPARATOR.match(line):
            continue
        out.append(markdown_line(line))
    return "\n".join(out)


def without_templating(text: str, keep_code: bool, report: FileReport) -> str:
    """HTML comments, Hugo shortcodes and Liquid tags removed (code they enclose only with `keep_code`);
    what Liquid's {% raw %} encloses is kept as it is."""
    parts = LIQUID_RAW.split(text)  # odd items: the contents of raw blocks
    return "".join(part if i % 2 else without_templates(part, keep_code, report) for i, part in enumerate(parts))


def without_templates(text: str, keep_code: bool, report: FileReport) -> str:
    text, comments = HTML_COMMENT.subn("", text)
    report.count("html_comments", comments)
    for pattern in (CODE_SHORTCODE, CODE_LIQUID):
        text, code = pattern.subn(lambda m: m.group(1) if keep_code else "", text)
        report.count("code_blocks", code)
    text, removed = LIQUID_COMMENT.subn("", text)
    text, shortcodes = SHORTCODE.subn("", text)
    text, liquid = LIQUID.subn("", text)
    report.count("shortcodes", removed + shortcodes + liquid)
    return text


def markdown_line(line: str) -> str:
    heading = HEADING.match(line)
    if heading:
        line = heading.group(1)
    line = LIST_MARKER.sub("", QUOTE.sub("", FOOTNOTE_DEFINITION.sub("", line)))
    if line.lstrip().startswith("|"):
        line = " ".join(cell.strip() for cell in line.strip().strip("|").split("|"))
    for pattern, replacement in INLINE:
        line = pattern.sub(replacement, line)
    return without_urls(line)[0]


def markdown_documents(text: str, name: str, options: ReadOptions, report: FileReport) -> list[Document]:
    return text_documents(markdown_text(text, options.keep_code, report), name, options, report)


# ----------------------------------------------------------------------------------------------
# Front matter

YAML_FIELD = re.compile(r"^([A-Za-z_][\w-]*)\s*:\s*(.*?)\s*$")
TOML_FIELD = re.compile(r"^([A-Za-z_][\w-]*)\s*=\s*(.*?)\s*$")
# Keys that make a front matter a post's (a plain text that happens to start with --- has none).
POST_KEYS = {"title", "date", "draft", "published", "tags", "categories", "category", "emoji", "topics", "type",
             "layout", "slug", "private", "updated_at", "published_at", "description", "author"}
# Front matter is at the top and short; a closing line further down is not one.
FRONT_MATTER_LINES = 200


def split_front_matter(text: str) -> tuple[dict[str, str] | None, str]:
    """(the front matter's top-level scalar fields, the rest), or (None, text) when there is none.
    Nested values and lists are not read: only titles, dates and draft flags are needed."""
    lines = text.split("\n")
    marker = lines[0].strip() if lines else ""
    if marker not in ("---", "+++"):
        return None, text
    closers = ("---", "...") if marker == "---" else ("+++",)
    for i, line in enumerate(lines[1:FRONT_MATTER_LINES], start=1):
        if line.strip() in closers:
            pattern = YAML_FIELD if marker == "---" else TOML_FIELD
            fields = {}
            for field in lines[1:i]:
                m = pattern.match(field)  # top level only: indented lines belong to nested values
                if m:
                    fields.setdefault(m.group(1), unquoted(m.group(2)))
            return fields, "\n".join(lines[i + 1:])
    return None, text


def unquoted(value: str) -> str:
    value = re.sub(r"\s+#.*$", "", value) if not value.startswith(("'", '"')) else value  # trailing comment
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def looks_like_post(text: str, report: FileReport) -> bool:
    """Markdown (or plain text) that starts with a post's front matter."""
    if report.format not in ("markdown", "text"):
        return False
    fields, _ = split_front_matter(text)
    return bool(fields) and bool(set(fields) & POST_KEYS)


def flag(fields: dict[str, str], key: str) -> bool | None:
    """A yes/no field: True, False, or None when it is missing or not a boolean."""
    return {"true": True, "yes": True, "false": False, "no": False}.get(fields.get(key, "").strip().lower())


# When a post goes live and stops being live (Hugo reads its keys in any case): Hugo's publishDate and
# its aliases, Zenn's published_at, else the post's date (Hugo and Jekyll do not build posts dated in
# the future unless told to); Hugo's expiryDate.
PUBLISH_KEYS = ("publishdate", "pubdate", "published_at", "published", "date")
EXPIRY_KEYS = ("expirydate", "unpublishdate")
TIME = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ]+(\d{1,2}):(\d{2})(?::(\d{2}))?(?:\.\d+)?)?"
                  r"\s*(Z|[+-]\d{2}:?\d{2})?$")
# Jekyll takes a post's date from its file name (_posts/2022-08-07-asaichi.md) when the front matter has none.
NAME_DATE = re.compile(r"^(\d{4}-\d{2}-\d{2})-")


def front_matter_time(value: str) -> datetime | None:
    """A front matter date (2023-12-30, 2022-08-07 07:30:00 +0900, 2023-12-30T10:00:00+09:00) as an
    aware time (UTC when it names no zone); None when it is not a date."""
    m = TIME.match(value.strip())
    if not m:
        return None
    year, month, day, hour, minute, second = (int(g or 0) for g in m.groups()[:6])
    zone = m.group(7) or "Z"
    offset = timedelta(0) if zone == "Z" else timedelta(hours=int(zone[1:3]), minutes=int(zone[-2:])) \
        * (1 if zone[0] == "+" else -1)
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=timezone(offset))
    except ValueError:
        return None


def first_time(fields: dict[str, str], keys: tuple[str, ...]) -> datetime | None:
    lowered = {k.lower(): v for k, v in fields.items()}
    return next(filter(None, (front_matter_time(lowered.get(key, "")) for key in keys)), None)


def is_draft(fields: dict[str, str], name: str, now: datetime) -> bool:
    """Not published: Hugo's draft: true, Jekyll's and Zenn's published: false, Qiita's private: true
    (limited sharing) or ignorePublish: true, a Qiita CLI file never posted, a post in Jekyll's
    _drafts/ folder, or one not live now."""
    return flag(fields, "draft") is True or flag(fields, "published") is False or flag(fields, "private") is True \
        or flag(fields, "ignorePublish") is True or is_unposted_qiita(fields) or "_drafts" in name_parts(name) \
        or not is_live(fields, name, now)


def is_unposted_qiita(fields: dict[str, str]) -> bool:
    """A Qiita CLI file (it has ignorePublish or organization_url_name) that was never posted: Qiita
    CLI writes the article's id only once `qiita publish` has posted it."""
    return "id" in fields and fields["id"].strip() in ("", "null", "~") \
        and ("ignorePublish" in fields or "organization_url_name" in fields)


def is_live(fields: dict[str, str], name: str, now: datetime) -> bool:
    """False for a post scheduled for later or one whose expiry date has passed."""
    publish = first_time(fields, PUBLISH_KEYS) or front_matter_time(name_date(name))
    expiry = first_time(fields, EXPIRY_KEYS)
    return not (publish and publish > now) and not (expiry and expiry <= now)


def not_a_post(fields: dict[str, str], name: str) -> str:
    """"page" for Hugo's section pages (_index.md) and pages of a site (layout or type page), "other"
    for Hugo's headless bundles (resources, never rendered); "" for a post."""
    stem = name_parts(name)[-1].rsplit(".", 1)[0]
    if stem == "_index" or "page" in (fields.get("layout", "").lower(), fields.get("type", "").lower()):
        return "page"
    return "other" if flag(fields, "headless") is True else ""


def name_parts(name: str) -> list[str]:
    return name.replace("\\", "/").split("/")


def name_date(name: str) -> str:
    """The date a Jekyll post's file name starts with ("" when none)."""
    named = NAME_DATE.match(name_parts(name)[-1])
    return named.group(1) if named else ""


def post_date(fields: dict[str, str], name: str) -> str:
    """The front matter's date (Qiita CLI files have only updated_at), else the one in a Jekyll file name."""
    return fields.get("date") or fields.get("published_at") or fields.get("updated_at") or name_date(name)


# A list written on one line: [a, "b c"].
FLOW_LIST = re.compile(r"^\[(.*)\]$")


def post_authors(fields: dict[str, str]) -> list[str]:
    """The names in `author` and `authors`: one name, or a list written on one line ([] when none;
    a list on several lines is not read)."""
    names = []
    for key in ("author", "authors"):
        value = fields.get(key, "").strip()
        listed = FLOW_LIST.match(value)
        names += [unquoted(n.strip()) for n in listed.group(1).split(",")] if listed else [value]
    return [n for n in names if n]


def markdown_post_documents(text: str, name: str, options: ReadOptions, report: FileReport) -> list[Document]:
    """One post: the Markdown after its front matter; none when it is a page, a draft (unless drafts
    are asked for) or another author's (when only some authors' posts are asked for)."""
    fields, _ = split_front_matter(text)
    reason = not_a_post(fields, name) or \
        ("draft" if is_draft(fields, name, datetime.now(timezone.utc)) and not options.include_drafts else "") or \
        author_left_out(report, post_authors(fields), options)
    if reason:
        report.leave_out(reason)
        return []
    doc = post_document(name, fields.get("title", ""), post_date(fields, name),
                        markdown_text(text, options.keep_code, report), options, report)
    return [doc] if doc else []
