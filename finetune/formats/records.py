"""Tables and Q&A: jsonl, json and csv/tsv records become texts, question/answer pairs or chat turns."""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field

from ..document import Document
from ..qa import qa_document
from .common import FileReport, Message, ReadOptions, Skip, message, normalized, text_documents


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


