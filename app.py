"""日本語GPT ファインチューニング・スタジオ: the Gradio app (a Hugging Face Space, or `python app.py`).

This file holds, in order: the shared objects, the callbacks (each calls finetune/ and hands the
result to studio_view for display), the layout, and the wiring. Per-user values live in gr.State;
the one training job is finetune.runner.TrainingJob, loaded models are in finetune.cache.ModelCache.
Every user action has a stable api_name, so gradio_client can script the studio (docs/api.md).
"""
from __future__ import annotations

import functools
import inspect
import os
from pathlib import Path

import gradio as gr

from finetune.batching import BATCHER
from finetune.cache import ModelCache
from finetune.devices import describe_devices, resolve_device
from finetune.errors import FinetuneError
from finetune.generate import GenerationSettings
from finetune.lora import LoraSettings
from finetune.models import DEFAULT_BASE, EMBEDDED_MODEL, STUDIO_UPLOADS, hub_reachable, studio_policy
from finetune.prepare import PrepareSettings, prepare
from finetune.priority import yield_cpu_to_training
from finetune.qa import prompt_for
from finetune.runner import TrainingJob, command_line, finished_runs
from finetune.scratch import ModelShape
from finetune.speed import default_block_size
from finetune.share import PushSettings, export_zip, push
from finetune.tokens import token_view
from finetune.train import TrainSettings
from finetune.workspace import export_path, staged_inputs

import studio_view as view
from studio_text import CSS, I18N, ON_LOAD_JS, error_text, say

T = I18N  # T("key"): a label translated in the browser (Japanese unless ?lang=en)

# ---------------------------------------------------------------------------------------------
# Shared objects

WORK = Path(os.environ.get("STUDIO_HOME", "runs/studio"))  # runs, staged uploads and zips go here
# Model folders a visitor may open: the embedded model's folder and the app's own runs (not the
# uploads beside them: those are visitors' files). More can be added for a local studio with
# STUDIO_MODEL_ROOTS (folders separated by os.pathsep).
POLICY = studio_policy(WORK, os.environ.get("STUDIO_MODEL_ROOTS", ""))
JOB = TrainingJob(WORK / "runs", policy=POLICY)
MODELS = ModelCache(max_models=3, policy=POLICY)  # base and tuned side by side, plus one being looked at
SCRATCH = "scratch"                # base-model choice meaning "a new model from scratch"
EXAMPLE_SENTENCE = "これはペンです。これはリンゴです。"
POLL_SECONDS = 1.0                 # how often an open page asks for the training status
ON_SPACE = bool(os.environ.get("SPACE_ID"))


def hub_token_present() -> bool:
    from huggingface_hub import get_token
    return bool(get_token())


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
    return str(staged_inputs(WORK / STUDIO_UPLOADS, files or [], pasted or ""))


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


# ---------------------------------------------------------------------------------------------
# Layout

with gr.Blocks(title=say("ja", "app_title")) as demo:
    lang = gr.State("ja")
    last_run = gr.State("")         # the newest finished run this page has seen
    shown_status = gr.State("")     # what the status panel shows, to skip unchanged polls

    with gr.Row(elem_classes="app-header"):
        gr.Markdown(T("app_heading"))
        language = gr.Markdown(view.language_links("ja"), elem_classes="lang-links")

    with gr.Tab(T("tab_tokens"), id="tokens") as tokens_tab:
        gr.Markdown(T("tokens_intro"))
        with gr.Row():
            with gr.Column(scale=3):
                sentence = gr.Textbox(EXAMPLE_SENTENCE, label=T("sentence"), lines=3, elem_id="sentence")
            with gr.Column(scale=2):
                tok_model = gr.Dropdown(model_choices("ja"), value=EMBEDDED_MODEL, label=T("tokenizer"),
                                        info=T("tokenizer_info"), allow_custom_value=True, elem_id="tok-model")
                compare_on = gr.Checkbox(False, label=T("compare_tokenizers"), elem_id="compare-on")
                tok_model_b = gr.Dropdown(model_choices("ja"), value=DEFAULT_BASE, label=T("tokenizer_b"),
                                          allow_custom_value=True, visible=False, elem_id="tok-model-b")
        with gr.Row():
            tokens_a = gr.HTML(elem_id="tokens-a")
            tokens_b = gr.HTML(visible=False, elem_id="tokens-b")
        with gr.Accordion(T("tokens_json"), open=False):
            details_a = gr.JSON(label="A", elem_id="details-a")
            details_b = gr.JSON(label="B", elem_id="details-b")

    with gr.Tab(T("tab_train"), id="train") as train_tab:
        with gr.Row():
            with gr.Column(scale=1):
                gr.Markdown(T("data_heading"))
                files = gr.File(label=T("files"), file_count="multiple", elem_id="files",
                                file_types=[".txt", ".md", ".html", ".htm", ".jsonl", ".json", ".csv", ".tsv", ".zip"])
                pasted = gr.Textbox("", label=T("pasted"), lines=5, placeholder=T("pasted_placeholder"), elem_id="pasted")
                check_button = gr.Button(T("check_data"), elem_id="check-data")
                summary = gr.Markdown(elem_id="data-summary")
                with gr.Accordion(T("block_preview"), open=True):
                    blocks = gr.Markdown(elem_id="block-preview")
            with gr.Column(scale=1):
                gr.Markdown(T("settings_heading"))
                base_model = gr.Dropdown(base_choices("ja"), value=EMBEDDED_MODEL, label=T("base_model"),
                                         info=T("base_model_info"), allow_custom_value=True, elem_id="base-model")
                method = gr.Radio([(T("method_full"), "full"), ("LoRA", "lora")], value="full",
                                  label=T("method"), elem_id="method")
                with gr.Row():
                    epochs = gr.Number(3, label=T("epochs"), minimum=0.1, step=1, elem_id="epochs")
                    max_steps = gr.Number(0, label=T("max_steps"), info=T("max_steps_info"), precision=0,
                                          minimum=0, elem_id="max-steps")
                with gr.Row():
                    learning_rate = gr.Number(0, label=T("learning_rate"), info=T("learning_rate_info"),
                                              minimum=0, step=1e-5, elem_id="learning-rate")
                    # 0 = the engine's per-device default (finetune/speed.py)
                    batch_size = gr.Number(0, label=T("batch_size"), info=T("batch_size_info"), precision=0,
                                           minimum=0, elem_id="batch-size")
                    block_size = gr.Number(0, label=T("block_size"), info=T("block_size_info"), precision=0,
                                           minimum=0, elem_id="block-size")
                device = gr.Radio([(T("device_auto"), "auto"), ("CPU", "cpu"), ("GPU (CUDA)", "cuda")],
                                  value="auto", label=T("device"), info=describe_devices(), elem_id="device")
                with gr.Accordion(T("advanced"), open=False, elem_id="advanced"):
                    with gr.Group(visible=False) as lora_group:
                        with gr.Row():
                            lora_r = gr.Number(LoraSettings.r, label="LoRA r", info=T("lora_r_info"), precision=0,
                                               minimum=1)
                            lora_alpha = gr.Number(LoraSettings.alpha, label="LoRA alpha", info=T("lora_alpha_info"),
                                                   precision=0, minimum=1)
                            lora_dropout = gr.Number(LoraSettings.dropout, label="LoRA dropout", minimum=0,
                                                     maximum=0.9, step=0.01)
                    with gr.Row():
                        heldout = gr.Slider(0, 0.5, TrainSettings.heldout, step=0.01, label=T("heldout"),
                                            info=T("heldout_info"), elem_id="heldout")
                        seed = gr.Number(TrainSettings.seed, label=T("seed"), precision=0)
                    with gr.Row():
                        warmup_steps = gr.Number(0, label=T("warmup_steps"), precision=0, minimum=0)
                        precision = gr.Radio(["auto", "fp32", "bf16", "fp16"], value="auto", label=T("precision"))
                    with gr.Group(visible=False) as scratch_group:
                        gr.Markdown(T("scratch_heading"))
                        with gr.Row():
                            vocab_size = gr.Number(ModelShape.vocab_size, label=T("vocab_size"), precision=0)
                            layers = gr.Number(ModelShape.layers, label=T("layers"), precision=0, minimum=1)
                            width = gr.Number(ModelShape.width, label=T("width"), precision=0, minimum=8)
                            heads = gr.Number(ModelShape.heads, label=T("heads"), precision=0, minimum=1)
                command = gr.Code(label=T("cli_command"), language="shell", lines=2, interactive=False,
                                  wrap_lines=True, elem_id="cli-command")
        with gr.Group(visible=False, elem_id="interrupted") as interrupted_box:
            gr.Markdown(T("interrupted_heading"))
            with gr.Row():
                # Any value reaches resume_training, which accepts interrupted runs of runs_dir only.
                interrupted_run = gr.Dropdown([], label=T("interrupted_run"), allow_custom_value=True, scale=4,
                                              elem_id="interrupted-run")
                resume_button = gr.Button(T("resume"), scale=1, elem_id="resume")
        with gr.Row():
            start_button = gr.Button(T("start"), variant="primary", elem_id="start")
            cancel_button = gr.Button(T("cancel"), variant="stop", elem_id="cancel")
        progress = gr.HTML(elem_id="progress")
        with gr.Row():
            loss_plot = gr.LinePlot(x="step", y="loss", color="series", color_title="", label=T("loss_plot"),
                                    elem_id="loss-plot")  # default height: a fixed one hides the legend
            log_lines = gr.Textbox(label=T("log"), lines=view.LOG_TAIL, max_lines=view.LOG_TAIL, interactive=False,
                                   elem_id="log")
        result = gr.Markdown(elem_id="result")
        job_status = gr.JSON(label="status", visible=False)
        timer = gr.Timer(POLL_SECONDS)

    with gr.Tab(T("tab_play"), id="play") as play_tab:
        with gr.Row():
            mode = gr.Radio(view.mode_choices("ja"), value="complete", label=T("mode"), scale=2, elem_id="mode")
            side_by_side = gr.Checkbox(False, label=T("side_by_side"), info=T("side_by_side_info"), scale=1,
                                       elem_id="side-by-side")
        with gr.Row():
            play_model = gr.Dropdown(model_choices("ja"), value=EMBEDDED_MODEL, label=T("model"),
                                     allow_custom_value=True, elem_id="play-model")
            compare_base = gr.Dropdown(model_choices("ja"), value=EMBEDDED_MODEL, label=T("base_side"),
                                       allow_custom_value=True, visible=False, elem_id="compare-base")
            compare_tuned = gr.Dropdown(model_choices("ja"), value=None, label=T("tuned_side"),
                                        allow_custom_value=True, visible=False, elem_id="compare-tuned")
        chat = gr.Chatbot(label=T("chat"), height=360, elem_id="chat")
        with gr.Row(visible=False) as pair_chats:
            chat_base = gr.Chatbot(label=T("base_side"), height=360, elem_id="chat-base")
            chat_tuned = gr.Chatbot(label=T("tuned_side"), height=360, elem_id="chat-tuned")
        with gr.Row():
            prompt = gr.Textbox(label=T("prompt"), placeholder=T("prompt_placeholder"), scale=6, elem_id="prompt")
            send_button = gr.Button(T("send"), variant="primary", scale=1, elem_id="send")
            compare_button = gr.Button(T("send_compare"), variant="primary", scale=1, visible=False,
                                       elem_id="send-compare")
            stop_button = gr.Button(T("stop"), scale=1, elem_id="stop")
            clear_button = gr.Button(T("clear"), scale=1, elem_id="clear")
        examples = [["「科学」とは", "complete"], ["昔々、ある海辺の町に", "complete"], ["灯台の明かりは", "complete"],
                    ["日本でいちばん高い山は？", "qa"]]
        gr.Examples(examples, inputs=[prompt, mode], label=T("examples"),
                    example_labels=[text if m == "complete" else f"Q&A: {text}" for text, m in examples])
        with gr.Accordion(T("sampling"), open=False):
            with gr.Row():
                max_new_tokens = gr.Slider(1, 400, 60, step=1, label=T("max_new_tokens"))
                temperature = gr.Slider(0, 2, GenerationSettings.temperature, step=0.05, label=T("temperature"),
                                        info=T("temperature_info"))
                top_p = gr.Slider(0.05, 1, GenerationSettings.top_p, step=0.01, label="top-p")
            with gr.Row():
                top_k = gr.Slider(0, 200, GenerationSettings.top_k, step=1, label="top-k", info=T("top_k_info"))
                repetition_penalty = gr.Slider(0.5, 2, GenerationSettings.repetition_penalty, step=0.05,
                                               label=T("repetition_penalty"))
                gen_seed = gr.Number(GenerationSettings.seed, label=T("seed"), precision=0, info=T("gen_seed_info"))

    with gr.Tab(T("tab_share"), id="share") as share_tab:
        share_run = gr.Dropdown([], label=T("trained_model"), elem_id="share-run")
        with gr.Row():
            with gr.Column():
                gr.Markdown(T("zip_heading"))
                merge = gr.Checkbox(False, label=T("merge"), info=T("merge_info"))
                zip_button = gr.Button(T("make_zip"), variant="primary", elem_id="make-zip")
                zip_file = gr.File(label=T("zip_file"), interactive=False, elem_id="zip-file")
            with gr.Column():
                gr.Markdown(T("hub_heading"))
                hub_state = gr.Markdown(elem_id="hub-state")
                repo = gr.Textbox(label=T("repo"), placeholder="my-japanese-gpt", elem_id="repo")
                private = gr.Checkbox(True, label=T("private"))
                if ON_SPACE or hub_token_present():
                    gr.LoginButton()  # a LoginButton without any token makes launch fail (docs: NOTES.md)
                token = gr.Textbox(label=T("token"), type="password", info=T("token_info"),
                                   visible=not ON_SPACE, elem_id="token")
                push_button = gr.Button(T("push"), elem_id="push")
                pushed = gr.Markdown(elem_id="pushed")

    # -----------------------------------------------------------------------------------------
    # Wiring

    demo.load(page_setup, None, [lang, tok_model, tok_model_b, base_model, mode, play_model, compare_base,
                                 compare_tuned, share_run, language, tokens_tab, train_tab, play_tab, share_tab],
              api_visibility="private")

    gr.on([sentence.change, tok_model.change, demo.load], tokenize, [sentence, tok_model], details_a,
          api_name="tokenize", show_progress="hidden", trigger_mode="always_last")
    gr.on([sentence.change, tok_model_b.change, compare_on.change], tokenize_b, [sentence, tok_model_b, compare_on],
          details_b, api_name="tokenize_b", show_progress="hidden", trigger_mode="always_last")
    compare_on.change(lambda on: (gr.update(visible=on), gr.update(visible=on)), compare_on,
                      [tok_model_b, tokens_b], api_visibility="private")
    gr.on([details_a.change, details_b.change, lang.change], show_tokens, [details_a, details_b, lang], [tokens_a, tokens_b],
          api_visibility="private", show_progress="hidden")
    tokens_tab.select(refresh_tokenizers, [lang, tok_model, tok_model_b, base_model], [tok_model, tok_model_b],
                      api_visibility="private")

    form = [base_model, method, epochs, max_steps, learning_rate, batch_size, block_size, device, heldout, seed,
            warmup_steps, precision, lora_r, lora_alpha, lora_dropout, vocab_size, layers, width, heads]
    check_inputs = [files, pasted, base_model, block_size, heldout, seed, lang]
    check_button.click(check_data, check_inputs, [summary, blocks], api_name="prepare_data")
    gr.on([files.upload, base_model.change, block_size.change, heldout.change], check_data_if_given, check_inputs,
          [summary, blocks], api_visibility="private", trigger_mode="always_last")
    gr.on([demo.load] + [c.change for c in [files, pasted, *form]], cli_command, [files, pasted, *form], command,
          api_name="cli_command", show_progress="hidden", trigger_mode="always_last")
    gr.on([base_model.change, method.change], method_fields, [base_model, method],
          [lora_group, scratch_group, method], api_visibility="private")
    start_button.click(start_training, [files, pasted, *form], job_status, api_name="start_training")
    cancel_button.click(cancel_training, None, job_status, api_name="cancel_training")
    demo.load(page_interrupted, None, [interrupted_box, interrupted_run], api_visibility="private")
    resume_button.click(resume_training, interrupted_run, job_status, api_name="resume_training").then(
        interrupted_view, lang, [interrupted_box, interrupted_run], api_visibility="private")
    timer.tick(training_status, None, job_status, api_name="training_status", show_progress="hidden",
               trigger_mode="once")
    job_status.change(show_status, [job_status, lang, shown_status, last_run],
                      [progress, loss_plot, log_lines, result, shown_status, last_run],
                      api_visibility="private", show_progress="hidden")
    last_run.change(adopt_run, [last_run, lang], [play_model, compare_base, compare_tuned, share_run, tok_model],
                    api_visibility="private")

    sampling_inputs = [mode, max_new_tokens, temperature, top_p, top_k, repetition_penalty, gen_seed]
    single_inputs = [prompt, play_model, *sampling_inputs, chat]
    pair_inputs = [prompt, compare_base, compare_tuned, *sampling_inputs, chat_base, chat_tuned]
    side_by_side.change(chat_layout, side_by_side, [play_model, compare_base, compare_tuned, chat, pair_chats,
                                                    send_button, compare_button], api_visibility="private")
    play_tab.select(refresh_models, [lang, play_model, compare_base, compare_tuned],
                    [play_model, compare_base, compare_tuned], api_visibility="private")
    generating = [
        send_button.click(generate, single_inputs, chat, api_name="generate"),
        compare_button.click(compare, pair_inputs, [chat_base, chat_tuned], api_name="compare"),
        prompt.submit(generate_single, [side_by_side, *single_inputs], chat, api_visibility="private"),
        prompt.submit(compare_pair, [side_by_side, *pair_inputs], [chat_base, chat_tuned],
                      api_visibility="private"),
    ]
    stop_button.click(None, None, None, cancels=generating, api_visibility="private")
    clear_button.click(lambda: ([], [], []), None, [chat, chat_base, chat_tuned], api_visibility="private")

    share_tab.select(hub_note, lang, hub_state, api_name="hub_status")
    share_tab.select(lambda lang: gr.update(choices=view.run_choices(finished_runs(JOB.runs_dir), lang)), lang,
                     share_run, api_visibility="private")
    zip_button.click(make_zip, [share_run, merge], zip_file, api_name="export_zip")
    push_button.click(push_to_hub, [share_run, repo, private, token], pushed, api_name="push_to_hub")


def launch_options() -> dict:
    """launch() arguments for the studio: port from $PORT (or GRADIO_SERVER_PORT, read by gradio)."""
    options = dict(i18n=I18N, css=CSS, js=ON_LOAD_JS, allowed_paths=[str(WORK.resolve())],
                   max_file_size="200mb",  # uploads beyond this are refused by gradio before they reach us
                   theme=gr.themes.Soft(font=["Noto Sans CJK JP", "Noto Sans JP", "sans-serif"]))
    if os.environ.get("PORT"):
        options["server_port"] = int(os.environ["PORT"])
    if ON_SPACE or os.environ.get("STUDIO_PUBLIC"):
        options["server_name"] = "0.0.0.0"  # reachable from outside the container
    return options


if __name__ == "__main__":
    # Four requests of one kind at a time (tokenize is instant; generation shares one sampling lock);
    # up to 64 wait in the queue, more are told to come back rather than piling up.
    demo.queue(default_concurrency_limit=4, max_size=64).launch(**launch_options())
