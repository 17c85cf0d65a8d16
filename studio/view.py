"""How the studio shows the engine's results: HTML, Markdown and tables built from plain data.

Every function takes data (dicts, reports, paths) and the page language, and returns something a
Gradio component displays. Nothing here loads models or changes files.
"""
from __future__ import annotations

import html
import json
import math
import os
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from finetune.formats import LEFT_OUT
from finetune.formats.common import left_out_message, ranked_authors, several_authors_message

from studio.text import TEXT, job_error_text, say

SPAN_COLOURS = 5  # neighbouring tokens cycle through this many background colours (CSS .c0 … .c4)


# ---------------------------------------------------------------------------------------------
# Tokens

def token_details(token_view, model: str, parity) -> dict:
    """The /tokenize answer: everything the token view shows, as JSON."""
    return {"model": model, "tokens": token_view.tokens, "ids": token_view.ids, "count": token_view.count,
            "characters": token_view.characters, "chars_per_token": token_view.chars_per_token,
            "parity": parity.status, "parity_mismatches": parity.mismatches,
            "spans": [asdict(span) for span in token_view.spans]}


def model_name(model: str, lang: str) -> str:
    """A short name for a model path: the embedded model by name, a run by its folder name."""
    path = Path(model)
    if path.name == "tiny-japanese-gpt2":
        return say(lang, "embedded_model")
    return path.name if path.is_dir() else model


def span_html(span: dict, index: int) -> str:
    """One token span: the exact text it covers, coloured by kind, with its token(s) and id(s) on hover."""
    kind = span["kind"]
    classes = ["tok", kind, f"c{index % SPAN_COLOURS}"]
    text = span["text"]
    if span["tokens"][0].startswith("▁"):
        classes.append("wordstart")           # CSS draws the ▁ marker; the text stays exact
    if text and not text.strip():
        classes.append("nl" if "\n" in text else "ws")
    if not text:
        classes.append("empty")               # e.g. a lone ▁: CSS shows the token name instead
    tip = " ".join(span["tokens"]) + " → " + " ".join(map(str, span["ids"]))
    return (f'<span class="{" ".join(classes)}" title="{html.escape(tip)}" '
            f'data-token="{html.escape(" ".join(span["tokens"]))}" data-ids="{" ".join(map(str, span["ids"]))}">'
            f"{html.escape(text)}</span>")


def parity_note(details: dict, lang: str) -> str:
    status = details.get("parity")
    if status == "mismatch":
        return f'<div class="note warn">⚠ {html.escape(say(lang, "parity_mismatch"))}</div>'
    if status == "repaired":
        return f'<div class="note info">ℹ {html.escape(say(lang, "parity_repaired"))}</div>'
    return ""


def comparison_line(details: dict, other: dict, lang: str) -> str:
    """How many tokens more or fewer than the other tokenizer needs for the same text."""
    if not other or not other.get("count") or not details.get("count"):
        return ""
    ratio = details["count"] / other["count"]
    return (f'<div class="compare-line">{html.escape(say(lang, "compare_line", other=model_name(other["model"], lang), ratio=ratio, diff=details["count"] - other["count"]))}</div>')


def token_html(details: dict, lang: str, other: dict | None = None) -> str:
    """Coloured spans, counts, ids in order, the legend and any tokenizer warning."""
    if not details:
        return ""
    spans = "".join(span_html(span, i) for i, span in enumerate(details["spans"]))
    counts = say(lang, "token_counts", count=details["count"], characters=details["characters"],
                 ratio=details["chars_per_token"])
    ids = ", ".join(map(str, details["ids"]))
    legend = "".join(f'<span class="tok {kind} legend-item">{html.escape(say(lang, "kind_" + kind))}</span>'
                     for kind in ("word", "byte", "unk", "special"))
    return (f'<div class="token-view"><div class="token-model">{html.escape(model_name(details["model"], lang))}</div>'
            f'{parity_note(details, lang)}'
            f'<div class="tokens">{spans}</div>'
            f'<div class="counts">{html.escape(counts)}</div>{comparison_line(details, other or {}, lang)}'
            f'<div class="ids-label">{html.escape(say(lang, "ids_label"))}</div><div class="ids">[{ids}]</div>'
            f'<div class="legend">{legend}</div></div>')


# ---------------------------------------------------------------------------------------------
# Runs and models

def run_metrics(run: str | Path) -> dict:
    path = Path(run) / "metrics.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def run_label(run: str | Path, lang: str) -> str:
    """'run-20261127-101500 (LoRA, 41.2 → 20.3)': a run and what it achieved."""
    metrics = run_metrics(run)
    if not metrics:
        return Path(run).name
    method = {"lora": "LoRA", "qlora": "QLoRA"}.get(metrics.get("method"), say(lang, "method_full_short"))
    return (f"{say(lang, 'trained_prefix')} {Path(run).name} ({method}, "
            f"{metrics['heldout_perplexity_before']:.1f} → {metrics['heldout_perplexity_after']:.1f})")


def run_choices(runs, lang: str) -> list[tuple[str, str]]:
    return [(run_label(run, lang), str(run)) for run in runs]


def interrupted_label(run, lang: str) -> str:
    """'run-20261127-101500 (stopped at step 60/100; resumes from checkpoint-50)'."""
    fields = dict(name=run.folder.name, step=run.step, total=run.max_steps)
    if run.from_scratch:
        return say(lang, "interrupted_scratch", **fields)
    if run.checkpoint is None:
        return say(lang, "interrupted_no_checkpoint", **fields)
    return say(lang, "interrupted_resumable", checkpoint=Path(run.checkpoint).name, **fields)


def interrupted_choices(runs, lang: str) -> list[tuple[str, str]]:
    return [(interrupted_label(run, lang), str(run.folder)) for run in runs]


def mode_choices(lang: str) -> list[tuple[str, str]]:
    return [(say(lang, "mode_complete"), "complete"), (say(lang, "mode_qa"), "qa")]


def language_links(lang: str) -> str:
    """Links that reload the page in the other language (the labels follow ?lang=)."""
    return "**日本語** · [English](?lang=en)" if lang == "ja" else "[日本語](?lang=ja) · **English**"


# ---------------------------------------------------------------------------------------------
# Data check

def left_out_line(left_out: dict[str, int], lang: str) -> str:
    """'Left out: drafts and unpublished posts: 3, pages (not posts): 2 (tick “Include drafts and
    unpublished posts” to use them)': an export's unused entries, and the boxes (or the authors
    field) that bring them back."""
    ja = lang == "ja"
    items, options = [], []
    for code, count in left_out.items():
        en_name, ja_name, option = LEFT_OUT.get(code, LEFT_OUT["other"])
        items.append(say(lang, "left_out_item", what=ja_name if ja else en_name, count=count))
        if option and option not in options:
            options.append(option)
    line = say(lang, "left_out", items=("、" if ja else ", ").join(items))
    boxes = ("」「" if ja else "”, “").join(say(lang, option) for option in options if option != "authors")
    key = {(True, True): "left_out_option_authors", (True, False): "left_out_option",
           (False, True): "left_out_authors"}.get((bool(boxes), "authors" in options))
    return line + (say(lang, key, options=boxes) if key else "")


def authors_line(f, lang: str) -> str:
    """'Authors: yama: 12, tanaka: 3': a file's posts per author, most first; when no author was
    chosen (the engine warned of several), how to choose."""
    items = [say(lang, "author_item", name=name, count=count) for name, count in ranked_authors(f)]
    line = say(lang, "file_authors", items=("、" if lang == "ja" else ", ").join(items))
    return line + (say(lang, "authors_hint") if several_authors_message(f).en in f.warnings else "")


def shown_name(name: str, root: Path | None) -> str:
    """A file as the visitor knows it: its path inside what they uploaded ("blog.zip/posts/a.html"),
    else (no upload folder given) its file name."""
    if root is not None and name.startswith(str(root) + os.sep):
        return name[len(str(root)) + 1:]
    return Path(name).name


def without_root(text: str, root: Path | None, lang: str) -> str:
    """An engine message with the server's upload folder taken out of the paths it names."""
    if root is None:
        return text
    return text.replace(str(root) + os.sep, "").replace(str(root), say(lang, "the_upload"))


def format_name(fmt: str, lang: str) -> str:
    """A reader's format as a blogger knows it ("movable-type": Hatena Blog / Movable Type)."""
    key = f"format_{fmt}"
    return say(lang, key) if key in TEXT else fmt


def is_export(f) -> bool:
    return bool(f.posts or f.comments or f.left_out)


def file_counts(f, lang: str) -> str:
    """What one used file gave: posts (and comments) of a blog export, else documents; characters."""
    if not is_export(f):
        return say(lang, "file_used", format=format_name(f.format, lang), documents=f.documents,
                   characters=f.characters)
    counts = say(lang, "file_posts", format=format_name(f.format, lang), posts=f.posts, characters=f.characters)
    if f.comments:
        counts += say(lang, "file_comments", comments=f.comments)
    return counts


def file_lines(report, lang: str, root: Path | None = None) -> list[str]:
    """One line per input file: used (what it gave) or skipped (why), what an export left out, and
    any warning. The upload folder's own entry (nothing usable in it) is left to the error line."""
    lines = []
    for f in report.files:
        if root is not None and f.name == str(root):
            continue
        name = shown_name(f.name, root)
        if f.used:
            lines.append(f"- ✓ `{name}`: {file_counts(f, lang)}")
        elif f.reason_code == "only_left_out":   # its left-out line below says what and why
            lines.append(f"- ✗ `{name}`: {say(lang, 'only_left_out')}")
        else:
            lines.append(f"- ✗ `{name}`: {f.reason_ja if lang == 'ja' else f.reason}")
        if len(f.authors) > 1 or "other_author" in f.left_out:
            lines.append(f"  - {authors_line(f, lang)}")
        if f.left_out:
            lines.append(f"  - {left_out_line(f.left_out, lang)}")
        # The engine's own left-out and several-authors warnings say the same as the lines above,
        # with the CLI's flags.
        repeated = [left_out_message(f, "left_out")] if f.left_out else []
        repeated += [several_authors_message(f)] if f.authors else []
        for warning in (f.warnings_ja if lang == "ja" else f.warnings):
            if not any(warning in (m.ja, m.en) for m in repeated):
                lines.append(f"  - ⚠ {warning}")
    return lines


def export_rows(totals, lang: str) -> list[tuple[str, str]]:
    """The summary's rows for blog exports: posts (and comments) used; entries left out, naming
    those a box brings back (drafts, comments)."""
    if not (totals.posts or totals.comments or totals.left_out):
        return []
    used = say(lang, "count_items", count=totals.posts)
    if totals.comments:
        used += say(lang, "sum_posts_comments", comments=totals.comments)
    rows = [(say(lang, "sum_posts"), used)]
    if totals.left_out:
        ja = lang == "ja"
        optional = [say(lang, "left_out_item", what=LEFT_OUT[code][1 if ja else 0], count=count)
                    for code, count in totals.left_out.items() if LEFT_OUT.get(code, LEFT_OUT["other"])[2]]
        value = say(lang, "count_items", count=sum(totals.left_out.values()))
        if optional:
            value += say(lang, "sum_left_out_of_which", items=("、" if ja else ", ").join(optional))
        rows.append((say(lang, "sum_left_out"), value))
    return rows


def data_summary(report, lang: str, scratch: bool = False, root: Path | None = None) -> str:
    """The numbers training will use, as a table, then the files and any problem. `root`: the
    folder the visitor's upload was staged in, never shown (files are named inside the upload)."""
    t = report.totals
    rows = [(say(lang, "sum_documents"), f"{t.documents:,}" + (f" (Q&A {t.qa_pairs:,})" if t.qa_pairs else "")),
            *export_rows(t, lang),
            (say(lang, "sum_characters"), f"{t.characters:,}")]
    if t.tokens is not None:
        rows += [(say(lang, "sum_tokens"), f"{t.tokens:,}"),
                 (say(lang, "sum_heldout"), say(lang, "sum_heldout_value", share=t.heldout_share,
                                                blocks=t.heldout_blocks, tokens=t.heldout_tokens)),
                 (say(lang, "sum_blocks"), say(lang, "sum_blocks_value", blocks=t.train_blocks, size=t.block_size)),
                 (say(lang, "sum_dropped"), f"{t.dropped_tokens:,}")]
    table = [f"| {say(lang, 'sum_item')} | {say(lang, 'sum_value')} |", "|---|---|"]
    table += [f"| {name} | {value} |" for name, value in rows]
    parts = ["\n".join(table), "\n".join(file_lines(report, lang, root))]
    if scratch:
        parts.append(say(lang, "scratch_counts_note"))
    if report.tokenizer_error:
        parts.append(f"⚠ {report.tokenizer_error}")
    if report.error and not report.documents and report.files:   # each file's line above says why
        parts.append(f"✗ **{say(lang, 'nothing_usable')}**")
    elif report.error:
        parts.append(f"✗ **{without_root(report.error_ja if lang == 'ja' else report.error, root, lang)}**")
    return "\n\n".join(parts)


def block_preview(report, lang: str) -> str:
    """The first packed blocks decoded back to text, as training will see them (none: no report)."""
    if report is None or not report.blocks_preview:
        return say(lang, "no_blocks")
    parts = []
    for block in report.blocks_preview:
        title = say(lang, "block_title", index=block.index + 1, tokens=block.tokens)
        if block.masked_tokens:
            title += " · " + say(lang, "block_masked", masked=block.masked_tokens)
        parts.append(f"**{title}**\n\n```text\n{block.text}\n```")
    return "\n\n".join(parts)


# ---------------------------------------------------------------------------------------------
# Training status

def duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds >= 60 else f"{seconds}s"


LOG_TAIL = 12  # log lines shown: the newest; the whole log is the run's progress.jsonl


def log_tail(status: dict) -> str:
    return "\n".join(status.get("log", [])[-LOG_TAIL:])


def progress_html(status: dict, lang: str) -> str:
    """A progress bar with steps, ETA and speed; for a job waiting in line, its place and wait."""
    state = status.get("state", "idle")
    if state == "idle":
        return f'<div class="job idle">{html.escape(say(lang, "job_idle"))}</div>'
    if state == "queued":
        return queued_html(status, lang)
    percent = round(100 * status.get("fraction", 0))
    facts = [say(lang, "state_" + state)]
    if status.get("max_steps"):
        facts.append(say(lang, "job_steps", step=status["step"], total=status["max_steps"]))
    if state in ("running", "stopping") and status.get("step"):
        facts.append(say(lang, "job_eta", eta=duration(status.get("eta_seconds"))))
    if status.get("tokens_per_second"):
        facts.append(say(lang, "job_speed", speed=status["tokens_per_second"]))
    line = " · ".join(facts)
    return (f'<div class="job {state}" data-state="{state}"><div class="job-bar">'
            f'<div class="job-fill" style="width:{percent}%"></div></div>'
            f'<div class="job-line">{html.escape(line)} <span class="job-percent">{percent}%</span></div></div>')


def queued_html(status: dict, lang: str) -> str:
    """'waiting for its turn · number 2 in line (1 ahead) · starts in about 3:20'."""
    place = status.get("position", 0)
    wait = status.get("wait_seconds")
    facts = [say(lang, "state_queued"), say(lang, "job_place", place=place, ahead=max(0, place - 1)),
             say(lang, "job_wait", wait=duration(wait)) if wait is not None else say(lang, "job_wait_unknown"),
             say(lang, "job_leave")]
    return (f'<div class="job queued" data-state="queued" data-position="{place}"><div class="job-bar">'
            f'<div class="job-fill" style="width:0%"></div></div>'
            f'<div class="job-line">{html.escape(" · ".join(facts))}</div></div>')


def loss_frame(status: dict, lang: str) -> pd.DataFrame | None:
    """Training and held-out loss by step, one row per point, for gr.LinePlot. None until the first
    training point: Gradio 6.31's plot keeps the series of its first drawing and never draws a
    series that appears later (and nothing at all after an empty first frame). The held-out point
    of step 0 always comes before it."""
    if not status.get("train_loss"):
        return None
    rows = [(step, loss, say(lang, "series_train")) for step, loss in status["train_loss"]]
    rows += [(step, loss, say(lang, "series_heldout")) for step, loss in status.get("heldout_loss", [])]
    return pd.DataFrame(rows, columns=["step", "loss", "series"])


def result_markdown(status: dict, lang: str) -> str:
    """Before/after held-out perplexity once the run is saved; the reason when it failed."""
    state = status.get("state")
    if state == "error":
        return f"✗ **{job_error_text(status.get('error', ''), status.get('error_kind', ''), lang)}**"
    metrics = status.get("metrics")
    if state not in ("done", "stopped") or not metrics:
        return ""
    before, after = metrics["heldout_perplexity_before"], metrics["heldout_perplexity_after"]
    change = (after - before) / before if before and not math.isnan(before) else float("nan")
    lines = [f"### {say(lang, 'result_title')}",
             say(lang, "result_perplexity", before=before, after=after, change=change),
             say(lang, "result_steps", steps=metrics["steps"], seconds=metrics["seconds"],
                 speed=metrics["train_tokens_per_second"]),
             say(lang, "result_folder", folder=status.get("out", ""))]
    if state == "stopped":
        lines.append(say(lang, "result_stopped"))
    if status.get("command"):
        lines.append(f"`{status['command']}`")
    return "\n\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Playground and share

def reply_text(reply: str, mode: str) -> str:
    """A continuation is shown after an ellipsis (it goes on from the prompt); an answer as is."""
    if mode == "qa":
        return reply.strip() or "（…）"
    return "…" + reply if reply else "…"


def hub_note(reachable: bool, lang: str) -> str:
    return say(lang, "hub_ok") if reachable else f"⚠ {say(lang, 'hub_unreachable')}"


def token_note(source: str, lang: str, user: str = "", space: bool = False) -> str:
    """Which token a push will use (`source` as finetune.share.push_token names it), in words."""
    if source == "typed":
        return say(lang, "token_typed")
    if source == "signed-in":
        return say(lang, "token_signed_in", user=user or "?")
    if source == "local":
        return say(lang, "token_local")
    return "⚠ " + say(lang, "token_none_space" if space else "token_none_local")


def pushed_markdown(url: str) -> str:
    return f"✓ [{url}]({url})"
