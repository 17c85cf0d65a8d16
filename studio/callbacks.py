"""The studio's callbacks: each finds out who is asking (studio/owners.py), calls finetune/, and
hands the result to studio.view for display.

Every callback that touches a run, an upload or the training job takes the caller's session key
(`session`: the page's gr.BrowserState, or an API caller's own) and, injected by Gradio, the
request and the signed-in profile; `owner_of` turns them into the Owner whose files it may use.
Per-page values live in gr.State; shared objects are in studio.shared.
"""
from __future__ import annotations

import functools
import hashlib
import inspect
import os
import re
import secrets
import shutil
from dataclasses import replace
from pathlib import Path

import gradio as gr

from finetune.devices import resolve_device
from finetune.errors import FinetuneError
from finetune.formats import ReadOptions, author_key
from finetune.batching import BATCHER
from finetune.generate import GenerationSettings
from finetune.lora import LoraSettings
from finetune.models import DEFAULT_BASE, EMBEDDED_MODEL, hub_reachable
from finetune.prepare import PrepareSettings, prepare, write_dump
from finetune.priority import yield_cpu_to_training
from finetune.qa import prompt_for
from finetune.runner import finished_runs, portable_command
from finetune.scratch import ModelShape
from finetune.share import PushSettings, export_zip, push, push_token
from finetune.speed import default_block_size
from finetune.tokens import token_view
from finetune.train import TrainSettings
from finetune.workspace import export_path, inputs_digest, safe_name, staged_inputs

from studio import shared, view
from studio.owners import SESSION_KEY, Owner, new_session_key
from studio.queue import Ticket
from studio.shared import MODELS, SCRATCH, default_model
from studio.text import error_text, say


def shows_errors(fn):
    """Turn the engine's user errors into a Japanese gr.Error (no traceback in the page)."""
    def fail(err):
        raise gr.Error(error_text(err), title=say("ja", "error_title"), print_exception=False) from None

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def streaming(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except (FinetuneError, ValueError) as err:
                fail(err)
        return streaming

    @functools.wraps(fn)
    def plain(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (FinetuneError, ValueError) as err:
            fail(err)
    return plain


def yields_cpu(fn):
    """Run a CPU-heavy callback at a lower priority than training (finetune/priority.py). Only the
    worker thread doing the work is lowered: the server's event loop keeps its priority, so every
    visitor is still answered in time. A streamed callback may continue on another worker thread
    after each yield, so every step lowers its own."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def streaming(*args, **kwargs):
            yield_cpu_to_training()
            for item in fn(*args, **kwargs):
                yield item
                yield_cpu_to_training()
        return streaming

    @functools.wraps(fn)
    def plain(*args, **kwargs):
        yield_cpu_to_training()
        return fn(*args, **kwargs)
    return plain


# ---------------------------------------------------------------------------------------------
# Callbacks: who is asking

def owner_of(session: str | None, request: gr.Request | None, profile: gr.OAuthProfile | None) -> Owner:
    """The caller's Owner (ValueError for a malformed session key)."""
    return shared.OWNERS.owner(session=session or None,
                               session_hash=getattr(request, "session_hash", None) if request else None,
                               user=profile.username if profile is not None else None)


def new_session() -> str:
    """A new session key for an API caller: pass it as `session` to every later call, from any
    client, to act as the same owner (keep it secret: whoever has it owns your runs)."""
    return new_session_key()


def page_session(session: str | None) -> str:
    """On page load: the browser's session key, made on its first visit (gr.BrowserState keeps it)."""
    return session if session and SESSION_KEY.match(session) else new_session_key()


def owner_line(session: str | None, lang: str, request: gr.Request, profile: gr.OAuthProfile | None) -> str:
    """Whose runs the page shows: the signed-in user's, this browser's, or (locally) everyone's."""
    owner = owner_of(session, request, profile)
    if owner.local:
        return ""
    if owner.signed_in:
        return say(lang, "owner_signed_in", user=owner.signed_in)
    return say(lang, "owner_browser", hours=f"{shared.RETENTION_HOURS:g}")


# ---------------------------------------------------------------------------------------------
# Callbacks: language and model lists

def page_language(request: gr.Request) -> str:
    """'en' when the page was opened with ?lang=en, else 'ja'."""
    return "en" if request.query_params.get("lang") == "en" else "ja"


def owned_runs(owner: Owner) -> list[Path]:
    """The owner's finished runs, newest first."""
    runs = [run for folder in shared.OWNERS.runs_dirs(owner) for run in finished_runs(folder)]
    return sorted(runs, key=lambda run: (run / "metrics.json").stat().st_mtime, reverse=True)


def model_choices(lang: str, owner: Owner, *extra: str) -> list[tuple[str, str]]:
    """The models offered everywhere: embedded, rinna, the owner's finished runs, and any value in use."""
    choices = [(say(lang, "embedded_model"), EMBEDDED_MODEL), (DEFAULT_BASE, DEFAULT_BASE)]
    choices += [(view.run_label(run, lang), str(run)) for run in owned_runs(owner)[:8]]
    known = {value for _, value in choices}
    choices += [(value, value) for value in extra if value and value not in known and value != SCRATCH]
    return choices


def refresh_models(lang: str, play_model: str, base_model: str, tuned_model: str, session: str | None = None,
                   request: gr.Request = None, profile: gr.OAuthProfile | None = None):
    """Fresh choices for each model dropdown of the playground, keeping its value."""
    choices = model_choices(lang, owner_of(session, request, profile), play_model, base_model, tuned_model)
    return [gr.update(choices=choices)] * 3


def refresh_tokenizers(lang: str, model_a: str, model_b: str, base_model: str, session: str | None = None,
                       request: gr.Request = None, profile: gr.OAuthProfile | None = None):
    """The tokenizer choices, including the base model chosen in the training tab."""
    choices = model_choices(lang, owner_of(session, request, profile), model_a, model_b, base_model)
    return gr.update(choices=choices), gr.update(choices=choices)


def base_choices(lang: str, owner: Owner) -> list[tuple[str, str]]:
    return model_choices(lang, owner)[:2] + [(say(lang, "scratch_model"), SCRATCH)]


def run_base(run: str) -> str:
    """The base model a run started from (the embedded model for a model trained from scratch)."""
    base = view.run_metrics(run).get("base_model", "") if run else ""
    return base if base and base != SCRATCH else EMBEDDED_MODEL


def page_setup(session: str | None, request: gr.Request, profile: gr.OAuthProfile | None = None):
    """On page load: the language, labels that depend on it, and the caller's newest trained model."""
    lang = page_language(request)
    owner = owner_of(session, request, profile)
    runs = owned_runs(owner)
    run = str(runs[0]) if runs else ""
    models = model_choices(lang, owner, run)
    return (lang, gr.update(choices=models), gr.update(choices=models), gr.update(choices=base_choices(lang, owner)),
            gr.update(choices=view.mode_choices(lang)),
            gr.update(choices=models, value=run or default_model()),
            gr.update(choices=models, value=run_base(run)), gr.update(choices=models, value=run or None),
            gr.update(choices=view.run_choices(runs, lang), value=run or None),
            view.language_links(lang), owner_line(session, lang, request, profile),
            *[gr.update(label=say(lang, key)) for key in ("tab_tokens", "tab_train", "tab_play", "tab_share")])


def adopt_run(run: str, lang: str, session: str | None = None, request: gr.Request = None,
              profile: gr.OAuthProfile | None = None):
    """A run has just finished: offer it in the playground, the share tab and the tokenizer view."""
    owner = owner_of(session, request, profile)
    models = model_choices(lang, owner, run)
    return (gr.update(choices=models, value=run), gr.update(choices=models, value=run_base(run)),
            gr.update(choices=models, value=run),
            gr.update(choices=view.run_choices(owned_runs(owner), lang), value=run),
            gr.update(choices=models))


# ---------------------------------------------------------------------------------------------
# Callbacks: 1. tokens

@yields_cpu
@shows_errors
def tokenize(text: str, model: str = EMBEDDED_MODEL, session: str | None = None, request: gr.Request = None,
             profile: gr.OAuthProfile | None = None, oauth_token: gr.OAuthToken | None = None) -> dict:
    """Tokens, ids, counts and coloured spans of `text` under `model`'s tokenizer."""
    model = shared.OWNERS.model(owner_of(session, request, profile), model or default_model())
    tokenizer, parity = MODELS.tokenizer(model, token=shared.visitor_token(oauth_token))
    return view.token_details(token_view(tokenizer, text or ""), model, parity)


@yields_cpu
def tokenize_b(text: str, model: str, compare: bool, session: str | None = None, request: gr.Request = None,
               profile: gr.OAuthProfile | None = None, oauth_token: gr.OAuthToken | None = None) -> dict:
    """The second tokenizer of compare mode (nothing while compare mode is off)."""
    return tokenize(text, model, session, request, profile, oauth_token) if compare else {}


def show_tokens(details_a: dict, details_b: dict, lang: str) -> tuple[str, str]:
    """Both token views; each mentions how the other one compares."""
    return view.token_html(details_a, lang, details_b), view.token_html(details_b, lang, details_a)


# ---------------------------------------------------------------------------------------------
# Callbacks: 2. training

def train_form(data: str, base_model: str, method: str, epochs: float, max_steps: int, learning_rate: float,
               batch_size: int, block_size: int, device: str, heldout: float, seed: int, warmup_steps: int,
               precision: str, lora_r: int, lora_alpha: int, lora_dropout: float, vocab_size: int, layers: int,
               width: int, heads: int, reading: ReadOptions | None = None) -> tuple[TrainSettings, ModelShape | None]:
    """The form's values as engine settings (ValueError on a bad value)."""
    scratch = base_model == SCRATCH
    settings = TrainSettings(
        data=[data] if data else [], model=EMBEDDED_MODEL if scratch else (base_model or default_model()),
        method="full" if scratch else method, epochs=float(epochs), max_steps=int(max_steps or -1),
        lr=learning_rate or None,  # 0 or empty: the method's default
        batch_size=int(batch_size), block_size=int(block_size), device=device, heldout=float(heldout),
        seed=int(seed), warmup_steps=int(warmup_steps), precision=precision,
        lora=LoraSettings(r=int(lora_r), alpha=int(lora_alpha), dropout=float(lora_dropout)),
        reading=reading or ReadOptions())
    shape = ModelShape(vocab_size=int(vocab_size), layers=int(layers), width=int(width), heads=int(heads),
                       context=max(512, int(block_size))) if scratch else None
    return settings, shape


def reading_options(include_drafts=False, include_comments=False, titles=False, keep_code=False,
                    authors: str | None = "") -> ReadOptions:
    """The blog-export fields as the engine's read options (None, from an API call: off, everyone's)."""
    return ReadOptions(include_drafts=bool(include_drafts), include_comments=bool(include_comments),
                       titles=bool(titles), keep_code=bool(keep_code), authors=author_names(authors))


# Between names in the authors field: commas, ASCII or Japanese (、，), and line breaks.
AUTHOR_SEPARATORS = re.compile(r"[,、，\n]")


def author_names(text: str | None) -> tuple[str, ...]:
    """The names written in the authors field; () when it is empty."""
    return tuple(name.strip() for name in AUTHOR_SEPARATORS.split(text or "") if name.strip())


def staged(owner: Owner, files, pasted: str) -> str:
    """The owner's copy of the uploaded files and pasted text (made once per content)."""
    return str(staged_inputs(shared.OWNERS.uploads(owner), files or [], pasted or ""))


# The blog-export options in the name of the documents file (the options that change the documents).
DOCUMENT_OPTIONS = (("include_drafts", "drafts"), ("include_comments", "comments"), ("titles", "titles"),
                    ("keep_code", "code"))


def documents_path(exports: Path, files, pasted: str, reading: ReadOptions, digest: str) -> Path:
    """Where the data check writes the cleaned documents of these inputs read with these options:
    a folder of the owner's exports per inputs (`digest`: their content digest, the staged folder's
    name, finetune.workspace.inputs_digest) and options (the
    authors by a digest of their names as matched), so that the file offered for download always
    belongs to the form as it stands, never to an earlier check. The file is named after the upload
    and the options ("blog-documents-drafts.jsonl", "blog-documents-by-yama.jsonl")."""
    uploads = [f for f in files or [] if f]
    options = [word for option, word in DOCUMENT_OPTIONS if getattr(reading, option)]
    alone = len(uploads) == 1 and not (pasted or "").strip()   # one file: named after it
    stem = [Path(safe_name(Path(uploads[0]).name)).stem] if alone else []
    authors = [f"authors{authors_digest(reading.authors)}"] if reading.authors else []
    folder = "-".join([f"documents-{digest}", *([*options, *authors] or ["plain"])])
    return exports / folder / ("-".join([*stem, "documents", *options, *authors_words(reading.authors)]) + ".jsonl")


# The authors' part of a documents file name: enough to tell files apart, short enough for any file system.
AUTHORS_NAME_CHARS = 40


def authors_digest(authors: tuple[str, ...]) -> str:
    """Eight hex digits naming a set of authors as they are matched (finetune.formats.author_key)."""
    return hashlib.sha256("\n".join(sorted({author_key(a) for a in authors})).encode("utf-8")).hexdigest()[:8]


def authors_words(authors: tuple[str, ...]) -> list[str]:
    """["by", "yama-田中_花子"]: the authors for a file name, letters, digits and _ only; [] for everyone."""
    names = [word for word in (re.sub(r"\W+", "_", a).strip("_") for a in authors) if word]
    return ["by", "-".join(names)[:AUTHORS_NAME_CHARS] or "authors"] if authors else []


def upload_relative(name: str, data: Path) -> str:
    """A document's source as the visitor knows it: the path inside what they uploaded
    ("blog.zip/posts/a.html#2"), never the server's folders."""
    return name.removeprefix(str(data) + os.sep)


def write_documents(docs, data: Path, path: Path) -> Path | None:
    """The documents exactly as they are packed (finetune.prepare.write_dump), their sources named
    inside the upload; written whole or not at all (a download never gets half a file). None when
    there is no document to offer."""
    if not docs:
        path.unlink(missing_ok=True)
        return None
    part = path.with_name(f"{path.name}.{secrets.token_hex(4)}.part")   # its own: two checks may write at once
    write_dump([replace(d, name=upload_relative(d.name, data)) for d in docs], part)
    return part.replace(path)


@yields_cpu
@shows_errors
def check_data(files: list[str] | None, pasted: str, base_model: str, block_size: int, heldout: float,
               seed: int, lang: str = "ja", session: str | None = None, include_drafts: bool = False,
               include_comments: bool = False, titles: bool = False, keep_code: bool = False, authors: str = "",
               request: gr.Request = None, profile: gr.OAuthProfile | None = None,
               oauth_token: gr.OAuthToken | None = None) -> tuple[str, str]:
    """Read the text as training will: a summary and the first packed blocks. The cleaned documents
    are also written as a .jsonl file in the caller's own exports folder (see `documents_file`)."""
    owner = owner_of(session, request, profile)
    counting = EMBEDDED_MODEL if base_model == SCRATCH else shared.OWNERS.model(owner, base_model or default_model())
    data = Path(staged(owner, files, pasted))
    reading = reading_options(include_drafts, include_comments, titles, keep_code, authors)
    settings = PrepareSettings(data=[str(data)], model=counting,
                               block_size=int(block_size) or default_block_size(resolve_device("auto"), 1024),
                               heldout=float(heldout), seed=int(seed), keep_code=reading.keep_code,
                               include_drafts=reading.include_drafts, include_comments=reading.include_comments,
                               authors=list(reading.authors), titles=reading.titles)
    report = prepare(settings, tokenizer=MODELS.tokenizer(counting, token=shared.visitor_token(oauth_token))[0])
    write_documents(report.documents, data, documents_path(shared.OWNERS.exports(owner), files, pasted, reading,
                                                      data.name))   # the staged folder is named by the digest
    return (view.data_summary(report, lang, scratch=base_model == SCRATCH, root=data),
            view.block_preview(report, lang))


@shows_errors
def documents_file(files: list[str] | None = None, pasted: str = "", session: str | None = None,
                   include_drafts: bool = False, include_comments: bool = False, titles: bool = False,
                   keep_code: bool = False, authors: str = "", request: gr.Request = None,
                   profile: gr.OAuthProfile | None = None) -> str | None:
    """The cleaned documents (.jsonl, one JSON line each: source, title, date, text) that the data
    check (/prepare_data) wrote for exactly these inputs and options; None when it wrote none: no
    check yet with these, the check failed, or no document to use. A separate step so that
    /prepare_data keeps its two outputs."""
    uploads = [f for f in files or [] if f]
    if not uploads and not (pasted or "").strip():
        return None
    exports = shared.OWNERS.exports(owner_of(session, request, profile))
    try:
        path = documents_path(exports, uploads, pasted,
                              reading_options(include_drafts, include_comments, titles, keep_code, authors),
                              inputs_digest(uploads, pasted or ""))
    except FileNotFoundError:   # an upload gone from Gradio's cache: nothing to match
        return None
    return str(path) if path.is_file() else None


def check_data_if_given(files: list[str] | None, pasted: str, base_model: str, block_size: int, heldout: float,
                        seed: int, lang: str = "ja", session: str | None = None, include_drafts: bool = False,
                        include_comments: bool = False, titles: bool = False, keep_code: bool = False,
                        authors: str = "", request: gr.Request = None, profile: gr.OAuthProfile | None = None,
                        oauth_token: gr.OAuthToken | None = None):
    """The data check again after a setting it depends on changed, or the files did; with no text
    left (the upload cleared) an empty summary, not the last one."""
    if not files and not (pasted or "").strip():
        return "", view.block_preview(None, lang)
    return check_data(files, pasted, base_model, block_size, heldout, seed, lang, session, include_drafts,
                      include_comments, titles, keep_code, authors, request, profile, oauth_token)


def cli_command(files: list[str] | None = None, pasted: str = "", base_model: str = EMBEDDED_MODEL,
                method: str = "full", epochs: float = 3, max_steps: int = 0, learning_rate: float = 0,
                batch_size: int = 0, block_size: int = 0, device: str = "auto", heldout: float = 0.1,
                seed: int = 42, warmup_steps: int = 0, precision: str = "auto", lora_r: int = 8,
                lora_alpha: int = 16, lora_dropout: float = 0.05, vocab_size: int = 6000, layers: int = 4,
                width: int = 256, heads: int = 4, include_drafts: bool = False, include_comments: bool = False,
                titles: bool = False, keep_code: bool = False, authors: str = "") -> str:
    """The `python -m finetune` command for the form as it stands (same parameters as start_training),
    as the visitor would run it on their own machine: their text in my-data/, no server paths."""
    given = "my-data/" if files or (pasted or "").strip() else ""   # no text yet: a placeholder
    try:
        settings, shape = train_form(given, base_model, method, epochs, max_steps, learning_rate, batch_size,
                                     block_size, device, heldout, seed, warmup_steps, precision, lora_r,
                                     lora_alpha, lora_dropout, vocab_size, layers, width, heads,
                                     reading_options(include_drafts, include_comments, titles, keep_code, authors))
    except ValueError as err:
        return f"# {err}"
    settings.out = "NEW-RUN"  # the real folder is named when the run starts
    return portable_command(settings, shape)


@shows_errors
def start_training(files: list[str] | None = None, pasted: str = "", base_model: str = EMBEDDED_MODEL,
                   method: str = "full", epochs: float = 3, max_steps: int = 0, learning_rate: float = 0,
                   batch_size: int = 0, block_size: int = 0, device: str = "auto", heldout: float = 0.1,
                   seed: int = 42, warmup_steps: int = 0, precision: str = "auto", lora_r: int = 8,
                   lora_alpha: int = 16, lora_dropout: float = 0.05, vocab_size: int = 6000, layers: int = 4,
                   width: int = 256, heads: int = 4, session: str | None = None, include_drafts: bool = False,
                   include_comments: bool = False, titles: bool = False, keep_code: bool = False, authors: str = "",
                   request: gr.Request = None, profile: gr.OAuthProfile | None = None,
                   oauth_token: gr.OAuthToken | None = None) -> dict:
    """Start training now, or join the line when another run trains; the caller's job status."""
    owner = owner_of(session, request, profile)
    if base_model != SCRATCH:
        base_model = shared.OWNERS.model(owner, base_model or default_model())
        shared.POLICY.check_weights(base_model)   # refused now, not after a wait in the line
        # A Hub base: its size (the studio's download limit) and the visitor's access, before the run.
        shared.POLICY.check_download(base_model, token=shared.visitor_token(oauth_token),
                                     parts=("model", "tokenizer"))
    shared.sweep_now()                             # room for the new files, if the disk is full
    data = staged(owner, files, pasted)
    settings, shape = train_form(data, base_model, method, epochs, max_steps, learning_rate, batch_size,
                                 block_size, device, heldout, seed, warmup_steps, precision,
                                 lora_r, lora_alpha, lora_dropout, vocab_size, layers, width, heads,
                                 reading_options(include_drafts, include_comments, titles, keep_code, authors))
    ticket = Ticket(owner.folders[0], settings, shape, runs_dir=shared.OWNERS.runs_dirs(owner)[0], data=(Path(data),))
    return shared.QUEUE.submit(ticket).to_dict()


@shows_errors
def training_status(session: str | None = None, request: gr.Request = None,
                    profile: gr.OAuthProfile | None = None) -> dict:
    """The caller's job (training, waiting in line, or the last one): state, steps, losses, log, metrics."""
    return shared.QUEUE.status(owner_of(session, request, profile).folders).to_dict()


@shows_errors
def cancel_training(session: str | None = None, request: gr.Request = None,
                    profile: gr.OAuthProfile | None = None) -> dict:
    """Stop the caller's run after its current step (it saves what it has learned so far), or take
    their waiting job out of the line. Nobody else's job is touched."""
    return shared.QUEUE.cancel(owner_of(session, request, profile).folders).to_dict()


def interrupted_view(lang: str, session: str | None = None, request: gr.Request = None,
                     profile: gr.OAuthProfile | None = None):
    """The box of the caller's runs that an app restart (or a crash) interrupted: shown only when there are any."""
    owner = owner_of(session, request, profile)
    choices = view.interrupted_choices(shared.JOB.interrupted(shared.OWNERS.runs_dirs(owner)), lang)
    return gr.update(visible=bool(choices)), gr.update(choices=choices, value=choices[0][1] if choices else None)


def page_interrupted(session: str | None, request: gr.Request, profile: gr.OAuthProfile | None = None):
    return interrupted_view(page_language(request), session, request, profile)


@shows_errors
def resume_training(run: str = "", session: str | None = None, request: gr.Request = None,
                    profile: gr.OAuthProfile | None = None) -> dict:
    """Continue one of the caller's interrupted runs from its last checkpoint with its own settings
    (the newest one when `run` is empty); its status, as /start_training gives."""
    from finetune.train import settings_from_run
    owner = owner_of(session, request, profile)
    runs_dirs = shared.OWNERS.runs_dirs(owner)
    if run and not owner.local:
        run = str(shared.OWNERS.run(owner, run))
    interrupted = shared.JOB.resumable_run(run or "", runs_dirs)
    settings = settings_from_run(interrupted.folder)
    settings.out = str(interrupted.folder)
    ticket = Ticket(owner.folders[0], settings, None, data=tuple(Path(d) for d in settings.data))
    return shared.QUEUE.submit(ticket).to_dict()


def show_status(status: dict, lang: str, shown: str, run: str):
    """Progress bar, loss plot, log and result; skipped when nothing changed since the last poll."""
    key = f"{status.get('out')}:{status.get('state')}:{status.get('events')}:{status.get('position')}"
    if key == shown:
        return gr.skip(), gr.skip(), gr.skip(), gr.skip(), shown, gr.skip()
    finished = status.get("out") if status.get("state") in ("done", "stopped") else run
    return (view.progress_html(status, lang), view.loss_frame(status, lang), view.log_tail(status),
            view.result_markdown(status, lang), key, finished)


def method_fields(base_model: str, method: str):
    """LoRA settings only matter for LoRA and QLoRA; scratch settings only for a new model."""
    scratch = base_model == SCRATCH
    return gr.update(visible=method in ("lora", "qlora") and not scratch), gr.update(visible=scratch), \
        gr.update(interactive=not scratch)


# ---------------------------------------------------------------------------------------------
# Callbacks: 3. playground

def sampling(max_new_tokens, temperature, top_p, top_k, repetition_penalty, seed) -> GenerationSettings:
    return GenerationSettings(max_new_tokens=int(max_new_tokens), temperature=float(temperature),
                              top_p=float(top_p), top_k=int(top_k),
                              repetition_penalty=float(repetition_penalty), seed=int(seed))


def model_prompt(text: str, mode: str) -> str:
    """What the model is given: the text itself, or the Q&A template around a question."""
    return prompt_for(text) if mode == "qa" else text


def streamed_reply(owner: Owner, model: str, prompt: str, mode: str, settings: GenerationSettings,
                   token: str | bool | None = None):
    """The reply so far, growing piece by piece. Every generation of the studio goes through here."""
    if not model:
        raise FinetuneError("no model chosen")
    loaded, tokenizer = MODELS.model(shared.OWNERS.model(owner, model), token=token)
    reply = ""
    for piece in BATCHER.stream(loaded, tokenizer, model_prompt(prompt, mode), settings):
        reply += piece
        yield view.reply_text(reply, mode)
    if not reply:
        yield view.reply_text("", mode)


def with_turn(history: list | None, prompt: str, reply: str) -> list:
    return (history or []) + [{"role": "user", "content": prompt}, {"role": "assistant", "content": reply}]


@yields_cpu
@shows_errors
def generate(prompt: str, model: str = EMBEDDED_MODEL, mode: str = "complete", max_new_tokens: int = 60,
             temperature: float = 0.8, top_p: float = 0.95, top_k: int = 50, repetition_penalty: float = 1.1,
             seed: int = 0, history: list | None = None, session: str | None = None, request: gr.Request = None,
             profile: gr.OAuthProfile | None = None, oauth_token: gr.OAuthToken | None = None):
    """Continue `prompt` (or answer it, mode "qa") with one model, streamed into the chat."""
    if not (prompt or "").strip():
        raise ValueError("the prompt is empty")
    owner = owner_of(session, request, profile)
    settings = sampling(max_new_tokens, temperature, top_p, top_k, repetition_penalty, seed)
    for reply in streamed_reply(owner, model, prompt, mode, settings, shared.visitor_token(oauth_token)):
        yield with_turn(history, prompt, reply)


@yields_cpu
@shows_errors
def compare(prompt: str, base_model: str = EMBEDDED_MODEL, tuned_model: str = "", mode: str = "complete",
            max_new_tokens: int = 60, temperature: float = 0.8, top_p: float = 0.95, top_k: int = 50,
            repetition_penalty: float = 1.1, seed: int = 0, base_history: list | None = None,
            tuned_history: list | None = None, session: str | None = None, request: gr.Request = None,
            profile: gr.OAuthProfile | None = None, oauth_token: gr.OAuthToken | None = None):
    """The same prompt and seed through the base and the fine-tuned model, side by side."""
    if not (prompt or "").strip():
        raise ValueError("the prompt is empty")
    if not tuned_model:
        raise FinetuneError("no fine-tuned model yet: train one in the 学習 tab or choose a folder")
    owner = owner_of(session, request, profile)
    settings = sampling(max_new_tokens, temperature, top_p, top_k, repetition_penalty, seed)
    shared.OWNERS.model(owner, tuned_model)   # refused before the base side starts talking
    token = shared.visitor_token(oauth_token)
    base_reply = ""
    for base_reply in streamed_reply(owner, base_model, prompt, mode, settings, token):
        yield with_turn(base_history, prompt, base_reply), with_turn(tuned_history, prompt, "…")
    for tuned_reply in streamed_reply(owner, tuned_model, prompt, mode, settings, token):
        yield with_turn(base_history, prompt, base_reply), with_turn(tuned_history, prompt, tuned_reply)


def generate_single(side_by_side: bool, prompt: str, model: str, mode: str, max_new_tokens: int,
                    temperature: float, top_p: float, top_k: int, repetition_penalty: float, seed: int,
                    history: list | None, session: str | None = None, request: gr.Request = None,
                    profile: gr.OAuthProfile | None = None, oauth_token: gr.OAuthToken | None = None):
    """Enter in the prompt box: a single generation unless side-by-side mode is on."""
    if side_by_side:
        yield gr.skip()
        return
    yield from generate(prompt, model, mode, max_new_tokens, temperature, top_p, top_k, repetition_penalty, seed,
                        history, session, request, profile, oauth_token)


def compare_pair(side_by_side: bool, prompt: str, base_model: str, tuned_model: str, mode: str,
                 max_new_tokens: int, temperature: float, top_p: float, top_k: int, repetition_penalty: float,
                 seed: int, base_history: list | None, tuned_history: list | None, session: str | None = None,
                 request: gr.Request = None, profile: gr.OAuthProfile | None = None,
                 oauth_token: gr.OAuthToken | None = None):
    """Enter in the prompt box: a side-by-side generation when that mode is on."""
    if not side_by_side:
        yield gr.skip(), gr.skip()
        return
    yield from compare(prompt, base_model, tuned_model, mode, max_new_tokens, temperature, top_p, top_k,
                       repetition_penalty, seed, base_history, tuned_history, session, request, profile,
                       oauth_token)


def chat_layout(side_by_side: bool):
    """One model and one chat, or base and fine-tuned side by side (each with its own send button)."""
    single, pair = gr.update(visible=not side_by_side), gr.update(visible=side_by_side)
    return single, pair, pair, single, pair, single, pair


# ---------------------------------------------------------------------------------------------
# Callbacks: 4. share

def share_runs(lang: str, session: str | None = None, request: gr.Request = None,
               profile: gr.OAuthProfile | None = None):
    """The share tab's run list, fresh."""
    return gr.update(choices=view.run_choices(owned_runs(owner_of(session, request, profile)), lang))


def own_run(owner: Owner, run: str) -> Path:
    """The caller's run folder `run` (NoSuchRun when it is not theirs); for the local user any
    folder the model policy allows, as before."""
    if not run:
        raise FinetuneError("no trained model yet: train one in the 学習 tab first")
    if owner.local:
        shared.POLICY.check(run)
        return Path(run)
    return shared.OWNERS.run(owner, run)


@yields_cpu
@shows_errors
def make_zip(run: str, merge: bool = False, session: str | None = None, request: gr.Request = None,
             profile: gr.OAuthProfile | None = None) -> str:
    """The chosen run folder as a zip that loads without this tool."""
    owner = owner_of(session, request, profile)
    folder = own_run(owner, run)
    return str(export_zip(folder, export_path(shared.OWNERS.exports(owner), folder), merge=bool(merge)))


def hub_note(lang: str) -> str:
    return view.hub_note(hub_reachable(), lang)


def chosen_token(token: str, oauth_token: gr.OAuthToken | None) -> tuple[str | None, str]:
    """(token, where it comes from) for a push. On a Space: the token typed in, else the signed-in
    visitor's; never the server's own. Off a Space: the token typed in, else the machine's
    (HF_TOKEN, `hf auth login`); the login button is a stand-in there and its token no real one."""
    private = shared.OWNERS.private
    signed_in = oauth_token.token if (oauth_token is not None and private) else None
    return push_token(token, signed_in, local=not private)


def token_note(token: str = "", lang: str = "ja", oauth_token: gr.OAuthToken | None = None,
               profile: gr.OAuthProfile | None = None) -> str:
    """Which token a push will use, in words (never the token itself)."""
    _, source = chosen_token(token, oauth_token)
    user = profile.username if profile is not None else ""
    return view.token_note(source, lang, user=user, space=shared.OWNERS.private)


@yields_cpu
@shows_errors
def push_to_hub(run: str, repo: str, private: bool = False, token: str = "", session: str | None = None,
                request: gr.Request = None, oauth_token: gr.OAuthToken | None = None,
                profile: gr.OAuthProfile | None = None) -> str:
    """Upload the chosen run to the Hub; the repo's URL. The token: see `chosen_token`."""
    owner = owner_of(session, request, profile)
    folder = own_run(owner, run)
    given, _ = chosen_token(token, oauth_token)
    url = push(PushSettings(model_dir=str(folder), repo=repo or "", private=bool(private)), token=given,
               local=not shared.OWNERS.private)
    return view.pushed_markdown(url)


@shows_errors
def delete_run(run: str, lang: str = "ja", session: str | None = None, request: gr.Request = None,
               profile: gr.OAuthProfile | None = None):
    """Delete one of the caller's runs (and its zip) for good; not while it trains or waits."""
    owner = owner_of(session, request, profile)
    folder = shared.OWNERS.run(owner, run)        # a run folder, even for the local user: nothing else
    if any(folder.resolve() == path.resolve() for path in shared.QUEUE.in_use()):
        raise FinetuneError(f"{folder.name} is training or waiting to train: cancel it first")
    shutil.rmtree(folder)
    export_path(shared.OWNERS.exports(owner), folder).unlink(missing_ok=True)
    return gr.update(choices=view.run_choices(owned_runs(owner), lang), value=None), \
        say(lang, "deleted", name=folder.name)
