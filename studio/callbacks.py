"""The studio's callbacks: each calls finetune/ and hands the result to studio.view for display.

Per-user values live in gr.State; the one training job is finetune.runner.TrainingJob, loaded
models are in finetune.cache.ModelCache (both in studio.shared).
"""
from __future__ import annotations

import functools
import inspect

import gradio as gr

from finetune.errors import FinetuneError
from finetune.generate import GenerationSettings, stream
from finetune.lora import LoraSettings
from finetune.models import DEFAULT_BASE, EMBEDDED_MODEL, hub_reachable
from finetune.prepare import PrepareSettings, prepare
from finetune.priority import yield_cpu_to_training
from finetune.qa import prompt_for
from finetune.runner import command_line, finished_runs
from finetune.scratch import ModelShape
from finetune.share import PushSettings, export_zip, push
from finetune.speed import default_block_size
from finetune.tokens import token_view
from finetune.train import TrainSettings
from finetune.workspace import export_path, staged_inputs
from finetune.devices import resolve_device

from studio import view
from studio.shared import JOB, MODELS, POLICY, SCRATCH, WORK
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
# Callbacks: language and model lists

def page_language(request: gr.Request) -> str:
    """'en' when the page was opened with ?lang=en, else 'ja'."""
    return "en" if request.query_params.get("lang") == "en" else "ja"


def latest_run() -> str:
    runs = finished_runs(JOB.runs_dir)
    return str(runs[0]) if runs else ""


def model_choices(lang: str, *extra: str) -> list[tuple[str, str]]:
    """The models offered everywhere: embedded, rinna, finished runs, and any value in use."""
    choices = [(say(lang, "embedded_model"), EMBEDDED_MODEL), (DEFAULT_BASE, DEFAULT_BASE)]
    choices += [(view.run_label(run, lang), str(run)) for run in finished_runs(JOB.runs_dir)[:8]]
    known = {value for _, value in choices}
    choices += [(value, value) for value in extra if value and value not in known and value != SCRATCH]
    return choices


def refresh_models(lang: str, *values: str):
    """Fresh choices for each model dropdown, keeping its value."""
    return [gr.update(choices=model_choices(lang, *values)) for _ in values]


def refresh_tokenizers(lang: str, model_a: str, model_b: str, base_model: str):
    """The tokenizer choices, including the base model chosen in the training tab."""
    choices = model_choices(lang, model_a, model_b, base_model)
    return gr.update(choices=choices), gr.update(choices=choices)


def base_choices(lang: str) -> list[tuple[str, str]]:
    return model_choices(lang)[:2] + [(say(lang, "scratch_model"), SCRATCH)]


def run_base(run: str) -> str:
    """The base model a run started from (the embedded model for a model trained from scratch)."""
    base = view.run_metrics(run).get("base_model", "") if run else ""
    return base if base and base != SCRATCH else EMBEDDED_MODEL


def page_setup(request: gr.Request):
    """On page load: the language, labels that depend on it, and the newest trained model."""
    lang = page_language(request)
    run = latest_run()
    models = model_choices(lang, run)
    return (lang, gr.update(choices=models), gr.update(choices=models), gr.update(choices=base_choices(lang)),
            gr.update(choices=view.mode_choices(lang)),
            gr.update(choices=models, value=run or EMBEDDED_MODEL),
            gr.update(choices=models, value=run_base(run)), gr.update(choices=models, value=run or None),
            gr.update(choices=view.run_choices(finished_runs(JOB.runs_dir), lang), value=run or None),
            view.language_links(lang),
            *[gr.update(label=say(lang, key)) for key in ("tab_tokens", "tab_train", "tab_play", "tab_share")])


def adopt_run(run: str, lang: str):
    """A run has just finished: offer it in the playground, the share tab and the tokenizer view."""
    models = model_choices(lang, run)
    return (gr.update(choices=models, value=run), gr.update(choices=models, value=run_base(run)),
            gr.update(choices=models, value=run),
            gr.update(choices=view.run_choices(finished_runs(JOB.runs_dir), lang), value=run),
            gr.update(choices=models))


# ---------------------------------------------------------------------------------------------
# Callbacks: 1. tokens

@yields_cpu
@shows_errors
def tokenize(text: str, model: str = EMBEDDED_MODEL) -> dict:
    """Tokens, ids, counts and coloured spans of `text` under `model`'s tokenizer."""
    tokenizer, parity = MODELS.tokenizer(model or EMBEDDED_MODEL)
    return view.token_details(token_view(tokenizer, text or ""), model or EMBEDDED_MODEL, parity)


@yields_cpu
def tokenize_b(text: str, model: str, compare: bool) -> dict:
    """The second tokenizer of compare mode (nothing while compare mode is off)."""
    return tokenize(text, model) if compare else {}


def show_tokens(details_a: dict, details_b: dict, lang: str) -> tuple[str, str]:
    """Both token views; each mentions how the other one compares."""
    return view.token_html(details_a, lang, details_b), view.token_html(details_b, lang, details_a)


# ---------------------------------------------------------------------------------------------
# Callbacks: 2. training

def train_form(data: str, base_model: str, method: str, epochs: float, max_steps: int, learning_rate: float,
               batch_size: int, block_size: int, device: str, heldout: float, seed: int, warmup_steps: int,
               precision: str, lora_r: int, lora_alpha: int, lora_dropout: float, vocab_size: int, layers: int,
               width: int, heads: int) -> tuple[TrainSettings, ModelShape | None]:
    """The form's values as engine settings (ValueError on a bad value)."""
    scratch = base_model == SCRATCH
    settings = TrainSettings(
        data=[data] if data else [], model=EMBEDDED_MODEL if scratch else (base_model or EMBEDDED_MODEL),
        method="full" if scratch else method, epochs=float(epochs), max_steps=int(max_steps or -1),
        lr=learning_rate or None,  # 0 or empty: the method's default
        batch_size=int(batch_size), block_size=int(block_size), device=device, heldout=float(heldout),
        seed=int(seed), warmup_steps=int(warmup_steps), precision=precision,
        lora=LoraSettings(r=int(lora_r), alpha=int(lora_alpha), dropout=float(lora_dropout)))
    shape = ModelShape(vocab_size=int(vocab_size), layers=int(layers), width=int(width), heads=int(heads),
                       context=max(512, int(block_size))) if scratch else None
    return settings, shape


def staged(files, pasted: str) -> str:
    return str(staged_inputs(WORK / "uploads", files or [], pasted or ""))


@yields_cpu
@shows_errors
def check_data(files: list[str] | None, pasted: str, base_model: str, block_size: int, heldout: float,
               seed: int, lang: str = "ja") -> tuple[str, str]:
    """Read the text as training will: a summary and the first packed blocks."""
    counting = EMBEDDED_MODEL if base_model == SCRATCH else (base_model or EMBEDDED_MODEL)
    settings = PrepareSettings(data=[staged(files, pasted)], model=counting,
                               block_size=int(block_size) or default_block_size(resolve_device("auto"), 1024),
                               heldout=float(heldout), seed=int(seed))
    report = prepare(settings, tokenizer=MODELS.tokenizer(counting)[0])
    return view.data_summary(report, lang, scratch=base_model == SCRATCH), view.block_preview(report, lang)


def check_data_if_given(files, pasted, *settings):
    """The data check again after a setting it depends on changed (nothing until text is given)."""
    if not files and not (pasted or "").strip():
        return gr.skip(), gr.skip()
    return check_data(files, pasted, *settings)


def cli_command(files: list[str] | None = None, pasted: str = "", base_model: str = EMBEDDED_MODEL,
                method: str = "full", epochs: float = 3, max_steps: int = 0, learning_rate: float = 0,
                batch_size: int = 0, block_size: int = 0, device: str = "auto", heldout: float = 0.1,
                seed: int = 42, warmup_steps: int = 0, precision: str = "auto", lora_r: int = 8,
                lora_alpha: int = 16, lora_dropout: float = 0.05, vocab_size: int = 6000, layers: int = 4,
                width: int = 256, heads: int = 4) -> str:
    """The `python -m finetune` command for the form as it stands (same parameters as start_training)."""
    try:
        data = staged(files, pasted)
    except FinetuneError:
        data = ""  # no text yet: the command shows a placeholder
    try:
        settings, shape = train_form(data, base_model, method, epochs, max_steps, learning_rate, batch_size,
                                     block_size, device, heldout, seed, warmup_steps, precision, lora_r,
                                     lora_alpha, lora_dropout, vocab_size, layers, width, heads)
    except ValueError as err:
        return f"# {err}"
    settings.out = str(JOB.runs_dir / "NEW-RUN")  # the real folder is named when the run starts
    return command_line(settings, shape)


@shows_errors
def start_training(files: list[str] | None = None, pasted: str = "", base_model: str = EMBEDDED_MODEL,
                   method: str = "full", epochs: float = 3, max_steps: int = 0, learning_rate: float = 0,
                   batch_size: int = 0, block_size: int = 0, device: str = "auto", heldout: float = 0.1,
                   seed: int = 42, warmup_steps: int = 0, precision: str = "auto", lora_r: int = 8,
                   lora_alpha: int = 16, lora_dropout: float = 0.05, vocab_size: int = 6000, layers: int = 4,
                   width: int = 256, heads: int = 4) -> dict:
    """Start the app's one training job in the background; its status."""
    settings, shape = train_form(staged(files, pasted), base_model, method, epochs, max_steps, learning_rate,
                                 batch_size, block_size, device, heldout, seed, warmup_steps, precision,
                                 lora_r, lora_alpha, lora_dropout, vocab_size, layers, width, heads)
    return JOB.start(settings, shape).to_dict()


def training_status() -> dict:
    """The current (or last) job: state, steps, losses, log, metrics."""
    return JOB.status().to_dict()


def cancel_training() -> dict:
    """Stop the job after its current step; it saves what it has learned so far."""
    return JOB.cancel().to_dict()


def interrupted_view(lang: str):
    """The box of runs that an app restart (or a crash) interrupted: shown only when there are any."""
    choices = view.interrupted_choices(JOB.interrupted(), lang)
    return gr.update(visible=bool(choices)), gr.update(choices=choices, value=choices[0][1] if choices else None)


def page_interrupted(request: gr.Request):
    return interrupted_view(page_language(request))


@shows_errors
def resume_training(run: str = "") -> dict:
    """Continue an interrupted run from its last checkpoint with its own settings (the newest one
    when `run` is empty); its status, as /start_training gives."""
    return JOB.resume(run or "").to_dict()


def show_status(status: dict, lang: str, shown: str, run: str):
    """Progress bar, loss plot, log and result; skipped when nothing changed since the last poll."""
    key = f"{status.get('out')}:{status.get('state')}:{status.get('events')}"
    if key == shown:
        return gr.skip(), gr.skip(), gr.skip(), gr.skip(), shown, gr.skip()
    finished = status.get("out") if status.get("state") in ("done", "stopped") else run
    return (view.progress_html(status, lang), view.loss_frame(status, lang), view.log_tail(status),
            view.result_markdown(status, lang), key, finished)


def method_fields(base_model: str, method: str):
    """LoRA settings only matter for LoRA; scratch settings only for a new model."""
    scratch = base_model == SCRATCH
    return gr.update(visible=method == "lora" and not scratch), gr.update(visible=scratch), \
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


def streamed_reply(model: str, prompt: str, mode: str, settings: GenerationSettings):
    """The reply so far, growing piece by piece."""
    if not model:
        raise FinetuneError("no model chosen")
    loaded, tokenizer = MODELS.model(model)
    reply = ""
    for piece in stream(loaded, tokenizer, model_prompt(prompt, mode), settings):
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
             seed: int = 0, history: list | None = None):
    """Continue `prompt` (or answer it, mode "qa") with one model, streamed into the chat."""
    if not (prompt or "").strip():
        raise ValueError("the prompt is empty")
    settings = sampling(max_new_tokens, temperature, top_p, top_k, repetition_penalty, seed)
    for reply in streamed_reply(model, prompt, mode, settings):
        yield with_turn(history, prompt, reply)


@yields_cpu
@shows_errors
def compare(prompt: str, base_model: str = EMBEDDED_MODEL, tuned_model: str = "", mode: str = "complete",
            max_new_tokens: int = 60, temperature: float = 0.8, top_p: float = 0.95, top_k: int = 50,
            repetition_penalty: float = 1.1, seed: int = 0, base_history: list | None = None,
            tuned_history: list | None = None):
    """The same prompt and seed through the base and the fine-tuned model, side by side."""
    if not (prompt or "").strip():
        raise ValueError("the prompt is empty")
    if not tuned_model:
        raise FinetuneError("no fine-tuned model yet: train one in the 学習 tab or choose a folder")
    settings = sampling(max_new_tokens, temperature, top_p, top_k, repetition_penalty, seed)
    base_reply = ""
    for base_reply in streamed_reply(base_model, prompt, mode, settings):
        yield with_turn(base_history, prompt, base_reply), with_turn(tuned_history, prompt, "…")
    for tuned_reply in streamed_reply(tuned_model, prompt, mode, settings):
        yield with_turn(base_history, prompt, base_reply), with_turn(tuned_history, prompt, tuned_reply)


def generate_single(side_by_side: bool, *args):
    """Enter in the prompt box: a single generation unless side-by-side mode is on."""
    if side_by_side:
        yield gr.skip()
        return
    yield from generate(*args)


def compare_pair(side_by_side: bool, *args):
    """Enter in the prompt box: a side-by-side generation when that mode is on."""
    if not side_by_side:
        yield gr.skip(), gr.skip()
        return
    yield from compare(*args)


def chat_layout(side_by_side: bool):
    """One model and one chat, or base and fine-tuned side by side (each with its own send button)."""
    single, pair = gr.update(visible=not side_by_side), gr.update(visible=side_by_side)
    return single, pair, pair, single, pair, single, pair


# ---------------------------------------------------------------------------------------------
# Callbacks: 4. share

@yields_cpu
@shows_errors
def make_zip(run: str, merge: bool = False) -> str:
    """The chosen run folder as a zip that loads without this tool."""
    if not run:
        raise FinetuneError("no trained model yet: train one in the 学習 tab first")
    POLICY.check(run)
    return str(export_zip(run, export_path(WORK / "exports", run), merge=bool(merge)))


def share_runs(lang: str):
    """The share tab's run list, fresh."""
    return gr.update(choices=view.run_choices(finished_runs(JOB.runs_dir), lang))


def hub_note(lang: str) -> str:
    return view.hub_note(hub_reachable(), lang)


@yields_cpu
@shows_errors
def push_to_hub(run: str, repo: str, private: bool = False, token: str = "",
                oauth_token: gr.OAuthToken | None = None) -> str:
    """Upload the chosen run to the Hub; the repo's URL. Uses the login button's token on a Space,
    else the token typed in, else HF_TOKEN."""
    if not run:
        raise FinetuneError("no trained model yet: train one in the 学習 tab first")
    POLICY.check(run)
    given = oauth_token.token if oauth_token is not None else (token or None)
    url = push(PushSettings(model_dir=run, repo=repo or "", private=bool(private)), token=given)
    return view.pushed_markdown(url)
