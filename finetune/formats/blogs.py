"""Blog exports: the author's published posts, one document each.

Recognised by their content, whatever the file is called:
  Movable Type / Hatena Blog   `AUTHOR:`/`TITLE:`/`STATUS:` lines, `BODY:` sections, entries ended by `--------`
  WordPress WXR (also note)    RSS with the wordpress.org/export namespace: <item>s with wp:post_type, wp:status
  Blogger (and other Atom)     an Atom <feed>: entries typed by blogger:type or the kind category
  Medium                       one HTML file per post (class "h-entry", a body section), in the export's zip

Drafts, pages, attachments, revisions, readers' comments and everything else an export holds are
counted in the report's `left_out`, by reason; ReadOptions.include_drafts and include_comments bring
drafts and (approved) comments back, each comment as a document of its own.

Team blogs hold several authors' posts: each post's author (Movable Type's AUTHOR:, WordPress's
dc:creator login and its display name from the wp:author table, Atom's <author><name>) is counted in
the report's `authors`; with ReadOptions.authors only those authors' posts are used, the others
counted as `other_author`. A post left out takes its comments with it.
"""
from __future__ import annotations

import html
import json
import re
import xml.etree.ElementTree as ET
from datetime import datetime

from ..document import Document
from .common import (CONTROLS, FileReport, ReadOptions, Skip, author_left_out, count_authors, message, other_author,
                     post_document)
from .html import HtmlText, fragment_text, parsed, with_line_breaks
from .text import markdown_text

# ----------------------------------------------------------------------------------------------
# Post bodies

# WordPress shortcodes around media (removed with what they enclose), around code, and any other.
MEDIA_SHORTCODE = re.compile(r"\[(caption|wp_caption|embed|video|audio|gallery|playlist)\b[^\]]*\]"
                             r"(?:(?:(?!\[\1\b).)*?\[/\1\])?", re.S)
CODE_SHORTCODE = re.compile(r"\[(code|sourcecode|source)\b[^\]]*\](.*?)\[/\1\]", re.S)
# Names of at least two letters: `[i]` in a text is more likely an index than a shortcode.
SHORTCODE = re.compile(r"\[/?[a-z][a-z0-9_-]+(?:\s[^\]\n]*)?\]")
# Hatena Blog notation that can remain in exported bodies: photos, the table of contents, embeds.
HATENA_NOTATION = re.compile(r"\[(?:f|asin|isbn|tex|twitter|youtube|map|google|gist|niconico|instagram|amazon|"
                             r"tweet|keyword|wikipedia):[^\]\n]*\]|\[:contents\]")
HATENA_LINK = re.compile(r"\[(https?://[^\]\s]+?)(?::title=([^\]\n]*))?(?::(?:embed|detail|image|barcode)"
                         r"[^\]\n]*)?\]")


def without_shortcodes(body: str, keep_code: bool, report: FileReport) -> str:
    """WordPress shortcodes removed: [caption]…[/caption] and other media ones with their content,
    [code]…[/code] with it unless `keep_code`, any other only as tags."""
    body, media = MEDIA_SHORTCODE.subn("", body)
    body, code = CODE_SHORTCODE.subn(lambda m: f"<pre>{html.escape(m.group(2))}</pre>" if keep_code else "", body)
    body, other = SHORTCODE.subn("", body)
    report.count("shortcodes", media + other)
    report.count("code_blocks", code)
    return body


def without_hatena_notation(body: str, report: FileReport) -> str:
    body, notation = HATENA_NOTATION.subn("", body)
    body, links = HATENA_LINK.subn(lambda m: m.group(2) or "", body)
    report.count("hatena_notation", notation + links)
    return body


# ----------------------------------------------------------------------------------------------
# Movable Type / Hatena Blog

MT_ENTRY_END = re.compile(r"^-{8}[ \t]*$", re.M)
MT_SECTION_END = "-----"
MT_FIELD = re.compile(r"^([A-Z][A-Z ]*[A-Z]):[ \t]?(.*)$", re.M)
MT_SECTION = re.compile(r"^([A-Z][A-Z ]*[A-Z]):[ \t]*$")
# MM/DD/YYYY hh:mm[:ss] [AM|PM]. Movable Type writes 12-hour times with AM/PM, Hatena and FC2 24-hour
# times without; some converters write a 24-hour time and PM, which Movable Type's importer reads as
# the 24-hour time (PM adds 12 only below 12).
MT_DATE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})\s+(\d{1,2}):(\d{2})(?::(\d{2}))?(?:\s*([AaPp])\.?[Mm]\.?)?$")
# CONVERT BREAKS values whose bodies are HTML already: none (0), the rich text editor, Movable Type 7's
# block editor. Any other value is a text filter over plain lines (1 and __default__: "convert line
# breaks"; textile_2 keeps its Textile marks); markdown… is Markdown.
MT_HTML_MODES = ("0", "", "richtext", "block_editor")


def looks_like_movable_type(text: str, report: FileReport) -> bool:
    head = text.lstrip()[:5000]
    return bool(MT_FIELD.match(head)) and bool(re.search(r"^BODY:[ \t]*$", head, re.M)) \
        and bool(re.search(r"^-{5}[ \t]*$", head, re.M))


def movable_type_entries(text: str) -> list[tuple[dict[str, str], list[tuple[str, dict[str, str], str]]]]:
    """Each entry as (its fields, its sections: (name, the section's own fields, body))."""
    entries = []
    for chunk in MT_ENTRY_END.split(text):
        lines = chunk.strip("\n").split("\n")
        if not any(line.strip() for line in lines):
            continue
        fields: dict[str, str] = {}
        i = 0
        while i < len(lines) and lines[i].strip() != MT_SECTION_END:
            m = MT_FIELD.match(lines[i])
            if m:
                fields.setdefault(m.group(1), m.group(2).strip())
            i += 1
        sections = []
        while i < len(lines):
            if lines[i].strip() == MT_SECTION_END or not MT_SECTION.match(lines[i]):
                i += 1
                continue
            name, i = MT_SECTION.match(lines[i]).group(1), i + 1
            start = i
            while i < len(lines) and lines[i].strip() != MT_SECTION_END:
                i += 1
            sections.append((name, *section_fields(name, lines[start:i])))
        entries.append((fields, sections))
    return entries


def section_fields(name: str, lines: list[str]) -> tuple[dict[str, str], str]:
    """A COMMENT or PING section starts with its own AUTHOR:/DATE:/… lines; other sections are body."""
    fields: dict[str, str] = {}
    if name in ("COMMENT", "PING"):
        while lines and MT_FIELD.match(lines[0]):
            m = MT_FIELD.match(lines.pop(0))
            fields.setdefault(m.group(1), m.group(2).strip())
    return fields, "\n".join(lines)


def mt_date(value: str) -> str:
    """Movable Type's MM/DD/YYYY hh:mm:ss [AM|PM] as ISO 8601; as given when it is not that."""
    m = MT_DATE.match(value.strip())
    if not m:
        return value.strip()
    month, day, year, hour, minute, second = (int(g or 0) for g in m.groups()[:6])
    meridiem = (m.group(7) or "").upper()
    hour += 12 if meridiem == "P" and hour < 12 else -12 if meridiem == "A" and hour == 12 else 0
    try:
        return datetime(year, month, day, hour, minute, second).isoformat()
    except ValueError:  # 02/30, 25:00
        return value.strip()


def mt_body_text(body: str, convert_breaks: str, options: ReadOptions, report: FileReport) -> str:
    """A body in the entry's CONVERT BREAKS mode: HTML (MT_HTML_MODES), Markdown (markdown…), or
    plain newlines that become line breaks (any other value)."""
    body = without_hatena_notation(body, report)
    mode = convert_breaks.strip().lower()
    if mode.startswith("markdown"):
        return markdown_text(body, options.keep_code, report)
    if mode not in MT_HTML_MODES:
        body = with_line_breaks(body)
    return fragment_text(body, report, options.keep_code)


def movable_type_documents(text: str, name: str, options: ReadOptions, report: FileReport) -> list[Document]:
    docs: list[Document] = []
    for number, (fields, sections) in enumerate(movable_type_entries(text), start=1):
        status = fields.get("STATUS", "Publish").strip().lower()
        breaks = fields.get("CONVERT BREAKS", "0")
        comments = [s for s in sections if s[0] == "COMMENT"]
        report.leave_out("trackback", sum(1 for s in sections if s[0] == "PING"))
        reason = "draft" if status != "publish" and not options.include_drafts else \
            author_left_out(report, [fields.get("AUTHOR", "")], options)
        if reason:
            report.leave_out(reason)
            report.leave_out("comment", len(comments))  # comments go with their post
            continue
        body = "\n\n".join(mt_body_text(b, breaks, options, report) for s, _, b in sections
                           if s in ("BODY", "EXTENDED BODY") and b.strip())
        docs += filter(None, [post_document(f"{name}#{number}", fields.get("TITLE", ""),
                                            mt_date(fields.get("DATE", "")), body, options, report)])
        for k, (_, meta, body) in enumerate(comments, start=1):
            docs += comment_documents(f"{name}#{number}.comment{k}", mt_date(meta.get("DATE", "")),
                                      with_line_breaks(body), options, report)
    return docs


def comment_documents(name: str, date: str, body_html: str, options: ReadOptions,
                      report: FileReport) -> list[Document]:
    """A reader's comment: a document of its own with include_comments, else counted as left out."""
    if not options.include_comments:
        report.leave_out("comment")
        return []
    doc = post_document(name, "", date, fragment_text(body_html, report, options.keep_code), options, report,
                        kind="comment")
    return [doc] if doc else []


# ----------------------------------------------------------------------------------------------
# XML exports

XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")


def xml_root(text: str) -> ET.Element:
    """The parsed document. Entity declarations (the way to a "billion laughs" expansion) are
    refused; control characters, invalid in XML and common in old exports, are removed first."""
    if "<!ENTITY" in text:
        raise Skip(message("xml_entities"))
    text = CONTROLS.sub("", XML_DECLARATION.sub("", text, count=1))  # the declared encoding is already applied
    try:
        return ET.fromstring(text)
    except ET.ParseError as err:
        raise Skip(message("bad_xml", error=str(err))) from None


def local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def namespace(tag: str) -> str:
    return tag[1:].split("}", 1)[0] if tag.startswith("{") else ""


def child_text(element: ET.Element, name: str, ns_part: str = "") -> str:
    """The text of the first child called `name` whose namespace contains `ns_part` ("" for any)."""
    for child in element:
        if local(child.tag) == name and ns_part in namespace(child.tag):
            return (child.text or "").strip()
    return ""


# ----------------------------------------------------------------------------------------------
# WordPress WXR (WordPress, note)

WP = "wordpress.org/export/"
CONTENT = "purl.org/rss/1.0/modules/content"
WP_SKIPPED_TYPES = {"page": "page", "attachment": "attachment", "revision": "revision"}
# comment_type: readers' comments ("" before WordPress 5.5), links from other sites (the Webmention
# plugin's too); anything else (WooCommerce reviews and order notes, 6.9's editorial notes on blocks,
# plugins' own types) is not a reader's comment on the post.
WP_COMMENT_TYPES = ("", "comment")
WP_LINK_TYPES = ("pingback", "trackback", "webmention")


def looks_like_wxr(text: str, report: FileReport) -> bool:
    head = text[:5000]
    return "<rss" in head and WP in head


def wxr_documents(text: str, name: str, options: ReadOptions, report: FileReport) -> list[Document]:
    root = xml_root(text)
    names = wxr_display_names(root)
    docs: list[Document] = []
    for number, item in enumerate(root.iter("item"), start=1):
        docs += wxr_item_documents(item, f"{name}#{number}", options, report, names)
    return docs


def wxr_display_names(root: ET.Element) -> dict[str, str]:
    """The wp:author table: each author's login -> display name (where the export gives one)."""
    authors = (a for a in root.iter() if local(a.tag) == "author" and WP in namespace(a.tag))
    pairs = ((child_text(a, "author_login", WP), child_text(a, "author_display_name", WP)) for a in authors)
    return {login: shown for login, shown in pairs if login and shown}


def wxr_author_left_out(item: ET.Element, options: ReadOptions, report: FileReport, names: dict[str, str]) -> str:
    """"other_author" when the post's author is none of options.authors, by login (dc:creator) or
    display name; the post is counted under the display name (the login where there is none)."""
    login = child_text(item, "creator", "purl.org/dc/elements")
    return author_left_out(report, [names.get(login, login)], options, aliases=[login])


def wxr_item_documents(item: ET.Element, name: str, options: ReadOptions, report: FileReport,
                       names: dict[str, str]) -> list[Document]:
    """A published post and, with include_comments, its approved comments; else what it is, counted."""
    kind = child_text(item, "post_type", WP) or "post"
    status = child_text(item, "status", WP) or "publish"
    comments = [c for c in item if local(c.tag) == "comment"]
    reason = wxr_left_out(kind, status, child_text(item, "post_password", WP), options) or \
        wxr_author_left_out(item, options, report, names)
    if reason:
        report.leave_out(reason)
        report.leave_out("comment", len(comments))  # comments go with their post
        return []
    content = without_shortcodes(child_text(item, "encoded", CONTENT), options.keep_code, report)
    if "<!-- wp:" not in content:  # the classic editor: newlines are the paragraphs
        content = with_line_breaks(content)
    date = child_text(item, "post_date", WP)
    date = date.replace(" ", "T") if date and not date.startswith("0000") else child_text(item, "pubDate")
    body = "\n\n".join(filter(None, [fragment_text(content, report, options.keep_code)]
                              + [fragment_text(note, report, options.keep_code) for note in wp_footnotes(item)]))
    docs = [post_document(name, child_text(item, "title"), date, body, options, report)]
    for k, comment in enumerate(comments, start=1):
        docs += wxr_comment_documents(comment, f"{name}.comment{k}", options, report)
    return [d for d in docs if d]


def wxr_left_out(kind: str, status: str, password: str, options: ReadOptions) -> str:
    """Why an item is left out ("" when it is used): not a post, in the trash, or not public (a draft,
    scheduled, pending or private post, or one behind a password) unless drafts are asked for."""
    if kind != "post":
        return WP_SKIPPED_TYPES.get(kind, "other")
    if status == "trash":
        return "trash"
    return "draft" if (status != "publish" or password) and not options.include_drafts else ""


def wp_footnotes(item: ET.Element) -> list[str]:
    """The notes of WordPress's footnotes block (6.3+), which live in the post's `footnotes` meta as
    JSON ([{"id": …, "content": "<html>"}]), not in its content; [] when there are none or it is not JSON."""
    for meta in (c for c in item if local(c.tag) == "postmeta"):
        if child_text(meta, "meta_key", WP) == "footnotes":
            try:
                notes = json.loads(child_text(meta, "meta_value", WP) or "[]")
            except json.JSONDecodeError:
                return []
            return [n["content"] for n in notes if isinstance(n, dict) and isinstance(n.get("content"), str)] \
                if isinstance(notes, list) else []
    return []


def wxr_comment_documents(comment: ET.Element, name: str, options: ReadOptions,
                          report: FileReport) -> list[Document]:
    kind = child_text(comment, "comment_type", WP)
    if kind not in WP_COMMENT_TYPES:
        report.leave_out("trackback" if kind in WP_LINK_TYPES else "other")
        return []
    if child_text(comment, "comment_approved", WP) != "1":
        report.leave_out("unapproved_comment")
        return []
    date = child_text(comment, "comment_date", WP).replace(" ", "T")
    return comment_documents(name, date, with_line_breaks(child_text(comment, "comment_content", WP)), options,
                             report)


# ----------------------------------------------------------------------------------------------
# Blogger, and Atom feeds in general

ATOM = "http://www.w3.org/2005/Atom"
BLOGGER_KIND = "http://schemas.google.com/g/2005#kind"
# Blogger's kinds (old exports: the kind category; new ones: blogger:type) -> what they are.
BLOGGER_KINDS = {"post": "post", "comment": "comment", "page": "page"}


def looks_like_atom(text: str, report: FileReport) -> bool:
    head = text[:5000]
    return "<feed" in head and ATOM in head


def atom_documents(text: str, name: str, options: ReadOptions, report: FileReport) -> list[Document]:
    root = xml_root(text)
    if local(root.tag) != "feed":
        raise Skip(message("not_an_export"))
    entries = [e for e in root if local(e.tag) == "entry"]
    # Posts left out, by id: their comments go with them, wherever in the feed they come.
    dropped = {child_text(e, "id") for e in entries if entry_kind(e) == "post" and atom_post_left_out(e, options)}
    dropped.discard("")
    docs: list[Document] = []
    for number, entry in enumerate(entries, start=1):
        docs += atom_entry_documents(entry, f"{name}#{number}", options, report, dropped)
    return docs


def entry_kind(entry: ET.Element) -> str:
    """post, comment, page, or other (Blogger's settings, template and layout entries)."""
    kind = child_text(entry, "type", "blogger").lower()
    if not kind:
        for child in entry:
            if local(child.tag) == "category" and child.get("scheme") == BLOGGER_KIND:
                kind = (child.get("term") or "").rsplit("#", 1)[-1].lower()
        if not kind and any(local(c.tag) == "in-reply-to" for c in entry):
            kind = "comment"
    return BLOGGER_KINDS.get(kind or "post", "other")


def entry_status(entry: ET.Element) -> str:
    """live, draft or trash: blogger:status (new exports: LIVE, DRAFT, SCHEDULED, SOFT_TRASHED; a
    blogger:trashed time also marks a post in the trash) or app:control/app:draft (old ones)."""
    status = child_text(entry, "status", "blogger").upper()
    if status == "SOFT_TRASHED" or child_text(entry, "trashed", "blogger"):
        return "trash"
    if status and status != "LIVE":
        return "draft"
    for control in (c for c in entry if local(c.tag) == "control"):
        if child_text(control, "draft").lower() == "yes":
            return "draft"
    return "live"


def atom_content_html(entry: ET.Element) -> str:
    """An entry's content as HTML: type html (escaped HTML, already unescaped by the parser), xhtml
    (markup inside a div) or text (newlines are lines)."""
    content = next((c for c in entry if local(c.tag) == "content"), None)
    if content is None:
        content = next((c for c in entry if local(c.tag) == "summary"), None)
    if content is None:
        return ""
    kind = (content.get("type") or "text").lower()
    if kind == "xhtml":
        return "".join(ET.tostring(c, encoding="unicode") for c in content)
    if kind in ("html", "text/html"):
        return content.text or ""
    return with_line_breaks(html.escape(content.text or ""))


def entry_authors(entry: ET.Element) -> list[str]:
    """The names of an entry's <author>s."""
    return [child_text(a, "name") for a in entry if local(a.tag) == "author"]


def entry_parent(entry: ET.Element) -> str:
    """The id of the post a comment answers: blogger:parent (new exports) or thr:in-reply-to's ref (old)."""
    reply = next((c for c in entry if local(c.tag) == "in-reply-to"), None)
    return child_text(entry, "parent", "blogger") or (reply.get("ref", "") if reply is not None else "")


def atom_post_left_out(entry: ET.Element, options: ReadOptions) -> str:
    """Why a post is left out ("" when it is used): trash, draft (unless drafts are asked for), other_author."""
    status = entry_status(entry)
    if status == "trash" or (status == "draft" and not options.include_drafts):
        return status
    return "other_author" if other_author(entry_authors(entry), options) else ""


def atom_entry_documents(entry: ET.Element, name: str, options: ReadOptions, report: FileReport,
                         dropped: set[str]) -> list[Document]:
    kind, status = entry_kind(entry), entry_status(entry)
    date = child_text(entry, "published") or child_text(entry, "updated")
    if kind == "comment":
        reason = "comment" if entry_parent(entry) in dropped else "unapproved_comment" if status != "live" else ""
        if reason:
            report.leave_out(reason)
            return []
        return comment_documents(name, date, atom_content_html(entry), options, report)
    if kind != "post":
        report.leave_out(kind if kind == "page" else "other")
        return []
    reason = atom_post_left_out(entry, options)
    if reason in ("", "other_author"):   # counted after the draft filter, before the author filter
        count_authors(report, entry_authors(entry))
    if reason:
        report.leave_out(reason)
        return []
    body = fragment_text(atom_content_html(entry), report, options.keep_code)
    title = fragment_text(child_text(entry, "title"), report)
    doc = post_document(name, title, date, body, options, report)
    return [doc] if doc else []


# ----------------------------------------------------------------------------------------------
# Medium

MEDIUM_POST = re.compile(r"class=\"h-entry\"")
MEDIUM_BODY = re.compile(r"data-field=\"body\"")


def looks_like_medium(text: str, report: FileReport) -> bool:
    return report.format == "html" and bool(MEDIUM_POST.search(text)) and bool(MEDIUM_BODY.search(text))


def medium_documents(text: str, name: str, options: ReadOptions, report: FileReport) -> list[Document]:
    """One post: the body section without the title repeated at its top; a draft when its file name
    says so (draft_…) or it has no publication time."""
    parser: HtmlText = parsed(text, True, options.keep_code, report)
    draft = name.rsplit("/", 1)[-1].startswith("draft_") or not parser.published
    if draft and not options.include_drafts:
        report.leave_out("draft")
        return []
    doc = post_document(name, parser.title(), parser.published, parser.text(), options, report)
    return [doc] if doc else []
