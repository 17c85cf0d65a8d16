"""The studio's page: the layout (components), then the wiring (which callback each event calls).

Every user action has a stable api_name, so gradio_client can script the studio (docs/api.md).
"""
from __future__ import annotations

import os

import gradio as gr

from finetune.batching import BATCHER
from finetune.devices import describe_devices
from finetune.formats import SUFFIX_FORMATS
from finetune.generate import GenerationSettings
from finetune.hubmodels import HUB_REACHABLE
from finetune.lora import LoraSettings
from finetune.models import DEFAULT_BASE, qlora_problem
from finetune.scratch import ModelShape
from finetune.train import TrainSettings

from studio import view
from studio import callbacks as cb, shared
from studio.owners import LOCAL, NOBODY
from studio.shared import EXAMPLE_SENTENCE, ON_SPACE, POLL_SECONDS, WORK, default_model
from studio.text import CSS, I18N, ON_LOAD_JS, say

T = I18N  # T("key"): a label translated in the browser (Japanese unless ?lang=en)


def build() -> gr.Blocks:
    """The whole page, wired."""
    # The page starts with the runs everyone may see: the local user's; on a Space, none (each
    # visitor's own arrive with page_setup, once their session is known).
    everyone = NOBODY if shared.OWNERS.private else LOCAL
    # On a Space, Gradio's own copies of visitors' files (uploads as received, zips handed out) go
    # after the same retention as the studio's anonymous files.
    # Why the embedded model is preselected, under the model choices (none when the Hub answered).
    model_note = "" if shared.HUB_CHOICE.reason == HUB_REACHABLE else f"model_note_{shared.HUB_CHOICE.reason}"
    retention = (shared.SWEEP_SECONDS, int(shared.RETENTION_HOURS * 3600)) if shared.OWNERS.private else None
    with gr.Blocks(title=say("ja", "app_title"), delete_cache=retention) as demo:
        # The browser's session key (made on its first visit), kept in its localStorage: a reload, or
        # a restart of the app, keeps the visitor's runs. Given to every callback that needs an owner.
        session = gr.BrowserState("", storage_key="finetune-studio-session",
                                  secret=shared.browser_secret() if shared.OWNERS.private else None)
        lang = gr.State("ja")
        last_run = gr.State("")         # the newest finished run this page has seen
        shown_status = gr.State("")     # what the status panel shows, to skip unchanged polls

        with gr.Row(elem_classes="app-header"):
            gr.Markdown(T("app_heading"))
            language = gr.Markdown(view.language_links("ja"), elem_classes="lang-links")
        owner_note = gr.Markdown(elem_id="owner-note")

        with gr.Tab(T("tab_tokens"), id="tokens") as tokens_tab:
            gr.Markdown(T("tokens_intro"))
            with gr.Row():
                with gr.Column(scale=3):
                    sentence = gr.Textbox(EXAMPLE_SENTENCE, label=T("sentence"), lines=3, elem_id="sentence")
                with gr.Column(scale=2):
                    tok_model = gr.Dropdown(cb.model_choices("ja", everyone), value=default_model(), label=T("tokenizer"),
                                            info=T("tokenizer_info"), allow_custom_value=True, elem_id="tok-model")
                    if model_note:
                        gr.Markdown(T(model_note), elem_classes="model-note", elem_id="tok-model-note")
                    compare_on = gr.Checkbox(False, label=T("compare_tokenizers"), elem_id="compare-on")
                    tok_model_b = gr.Dropdown(cb.model_choices("ja", everyone), value=DEFAULT_BASE, label=T("tokenizer_b"),
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
                    # Every suffix the engine reads (a WordPress export is .xml): Gradio refuses the others.
                    files = gr.File(label=T("files"), file_count="multiple", elem_id="files",
                                    file_types=[*SUFFIX_FORMATS, ".zip"])
                    pasted = gr.Textbox("", label=T("pasted"), lines=5, placeholder=T("pasted_placeholder"), elem_id="pasted")
                    with gr.Group(elem_id="blog-options"):  # blog exports (finetune.formats.ReadOptions)
                        gr.Markdown(T("blog_options"), elem_classes="blog-options-note")
                        with gr.Row():
                            include_drafts = gr.Checkbox(False, label=T("include_drafts"), elem_id="include-drafts")
                            include_comments = gr.Checkbox(False, label=T("include_comments"), elem_id="include-comments")
                        with gr.Row():
                            titles = gr.Checkbox(False, label=T("titles"), elem_id="titles")
                            keep_code = gr.Checkbox(False, label=T("keep_code"), elem_id="keep-code")
                        # Team blogs: only these authors' posts (finetune.formats.ReadOptions.authors)
                        authors = gr.Textbox("", label=T("authors"), placeholder=T("authors_placeholder"),
                                             elem_id="authors")
                    check_button = gr.Button(T("check_data"), elem_id="check-data")
                    summary = gr.Markdown(elem_id="data-summary")
                    dump_file = gr.File(label=T("dump_file"), interactive=False, elem_id="dump-file")
                    with gr.Accordion(T("block_preview"), open=True):
                        blocks = gr.Markdown(elem_id="block-preview")
                with gr.Column(scale=1):
                    gr.Markdown(T("settings_heading"))
                    base_model = gr.Dropdown(cb.base_choices("ja", everyone), value=default_model(), label=T("base_model"),
                                             info=T("base_model_info"), allow_custom_value=True, elem_id="base-model")
                    if model_note:
                        gr.Markdown(T(model_note), elem_classes="model-note", elem_id="base-model-note")
                    # QLoRA (4-bit base weights) only where it can train: a CUDA GPU with bitsandbytes.
                    methods = [(T("method_full"), "full"), ("LoRA", "lora")] + \
                        ([("QLoRA", "qlora")] if qlora_problem("cuda") is None else [])
                    method = gr.Radio(methods, value="full",
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
                    # Any value reaches cb.resume_training, which accepts interrupted runs of runs_dir only.
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
                play_model = gr.Dropdown(cb.model_choices("ja", everyone), value=default_model(), label=T("model"),
                                         allow_custom_value=True, elem_id="play-model")
                compare_base = gr.Dropdown(cb.model_choices("ja", everyone), value=default_model(), label=T("base_side"),
                                           allow_custom_value=True, visible=False, elem_id="compare-base")
                compare_tuned = gr.Dropdown(cb.model_choices("ja", everyone), value=None, label=T("tuned_side"),
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
            # Any value reaches the share callbacks (an API caller names a run by its folder); each one
            # accepts only the caller's own runs.
            share_run = gr.Dropdown([], label=T("trained_model"), allow_custom_value=True, elem_id="share-run")
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
                    if ON_SPACE:
                        # Only on a Space: off one, Gradio's stand-in login needs a token (launch fails
                        # without one, NOTES.md) and gives no real token to push with.
                        gr.LoginButton(elem_id="login")
                    token = gr.Textbox(label=T("token"), type="password", info=T("token_info"), elem_id="token")
                    token_used = gr.Markdown(elem_id="push-token")
                    push_button = gr.Button(T("push"), elem_id="push")
                    pushed = gr.Markdown(elem_id="pushed")
            with gr.Row():
                delete_button = gr.Button(T("delete_run"), variant="secondary", size="sm", elem_id="delete-run")
                delete_confirm = gr.Button(T("delete_confirm"), variant="stop", size="sm", visible=False,
                                           elem_id="delete-confirm")
                deleted = gr.Markdown(elem_id="deleted")

        # -----------------------------------------------------------------------------------------
        # Wiring

        gr.api(cb.new_session, api_name="new_session")
        page_ready = demo.load(cb.page_session, session, session, api_visibility="private").then(
            cb.page_setup, session, [lang, tok_model, tok_model_b, base_model, mode, play_model, compare_base,
                                     compare_tuned, share_run, language, owner_note, tokens_tab, train_tab, play_tab,
                                     share_tab], api_visibility="private")

        gr.on([sentence.change, tok_model.change, demo.load], cb.tokenize, [sentence, tok_model, session], details_a,
              api_name="tokenize", show_progress="hidden", trigger_mode="always_last")
        gr.on([sentence.change, tok_model_b.change, compare_on.change], cb.tokenize_b, [sentence, tok_model_b, compare_on, session],
              details_b, api_name="tokenize_b", show_progress="hidden", trigger_mode="always_last")
        compare_on.change(lambda on: (gr.update(visible=on), gr.update(visible=on)), compare_on,
                          [tok_model_b, tokens_b], api_visibility="private")
        gr.on([details_a.change, details_b.change, lang.change], cb.show_tokens, [details_a, details_b, lang], [tokens_a, tokens_b],
              api_visibility="private", show_progress="hidden")
        tokens_tab.select(cb.refresh_tokenizers, [lang, tok_model, tok_model_b, base_model, session],
                          [tok_model, tok_model_b],
                          api_visibility="private")

        form = [base_model, method, epochs, max_steps, learning_rate, batch_size, block_size, device, heldout, seed,
                warmup_steps, precision, lora_r, lora_alpha, lora_dropout, vocab_size, layers, width, heads]
        boxes = [include_drafts, include_comments, titles, keep_code]
        reading = [*boxes, authors]   # after the older inputs (each new one last): APIs keep working
        check_inputs = [files, pasted, base_model, block_size, heldout, seed, lang, session, *reading]
        # After each check, the documents file of exactly the inputs and options now in the form, or
        # none (a failed check, nothing to use): never an earlier check's file.
        documents_inputs = [files, pasted, session, *reading]
        check_button.click(cb.check_data, check_inputs, [summary, blocks], api_name="prepare_data").then(
            cb.documents_file, documents_inputs, dump_file, api_name="documents_file")
        # files.change: an upload, and the upload cleared (the summary and the file go with it).
        # The authors are checked once typed (Enter, or leaving the field), not per keystroke.
        gr.on([files.change, base_model.change, block_size.change, heldout.change] + [c.change for c in boxes]
              + [authors.submit, authors.blur],
              cb.check_data_if_given, check_inputs,
              [summary, blocks], api_visibility="private", trigger_mode="always_last").then(
            cb.documents_file, documents_inputs, dump_file, api_visibility="private")
        # Pasted text is checked on request (not per keystroke); until then the file is no longer its.
        gr.on([pasted.change, authors.change], lambda: None, None, dump_file, api_visibility="private",
              show_progress="hidden")
        gr.on([demo.load] + [c.change for c in [files, pasted, *form, *reading]], cb.cli_command,
              [files, pasted, *form, *reading], command,
              api_name="cli_command", show_progress="hidden", trigger_mode="always_last")
        gr.on([base_model.change, method.change], cb.method_fields, [base_model, method],
              [lora_group, scratch_group, method], api_visibility="private")
        start_button.click(cb.start_training, [files, pasted, *form, session, *reading], job_status,
                           api_name="start_training")
        cancel_button.click(cb.cancel_training, session, job_status, api_name="cancel_training")
        page_ready.then(cb.page_interrupted, session, [interrupted_box, interrupted_run], api_visibility="private")
        resume_button.click(cb.resume_training, [interrupted_run, session], job_status,
                            api_name="resume_training").then(
            cb.interrupted_view, [lang, session], [interrupted_box, interrupted_run], api_visibility="private")
        timer.tick(cb.training_status, session, job_status, api_name="training_status", show_progress="hidden",
                   trigger_mode="once")
        job_status.change(cb.show_status, [job_status, lang, shown_status, last_run],
                          [progress, loss_plot, log_lines, result, shown_status, last_run],
                          api_visibility="private", show_progress="hidden")
        last_run.change(cb.adopt_run, [last_run, lang, session], [play_model, compare_base, compare_tuned, share_run, tok_model],
                        api_visibility="private")

        sampling_inputs = [mode, max_new_tokens, temperature, top_p, top_k, repetition_penalty, gen_seed]
        single_inputs = [prompt, play_model, *sampling_inputs, chat, session]
        pair_inputs = [prompt, compare_base, compare_tuned, *sampling_inputs, chat_base, chat_tuned, session]
        side_by_side.change(cb.chat_layout, side_by_side, [play_model, compare_base, compare_tuned, chat, pair_chats,
                                                        send_button, compare_button], api_visibility="private")
        play_tab.select(cb.refresh_models, [lang, play_model, compare_base, compare_tuned, session],
                        [play_model, compare_base, compare_tuned], api_visibility="private")
        # Generations share one batch (finetune/batching.py): as many run at once as a batch holds,
        # not the queue's default 4.
        batch = BATCHER.max_batch
        generating = [
            send_button.click(cb.generate, single_inputs, chat, api_name="generate", concurrency_limit=batch),
            compare_button.click(cb.compare, pair_inputs, [chat_base, chat_tuned], api_name="compare",
                                 concurrency_limit=batch),
            prompt.submit(cb.generate_single, [side_by_side, *single_inputs], chat, api_visibility="private",
                          concurrency_limit=batch),
            prompt.submit(cb.compare_pair, [side_by_side, *pair_inputs], [chat_base, chat_tuned],
                          api_visibility="private", concurrency_limit=batch),
        ]
        stop_button.click(None, None, None, cancels=generating, api_visibility="private")
        clear_button.click(lambda: ([], [], []), None, [chat, chat_base, chat_tuned], api_visibility="private")

        share_tab.select(cb.hub_note, lang, hub_state, api_name="hub_status")
        share_tab.select(cb.share_runs, [lang, session], share_run, api_visibility="private")
        # always_last: a token typed while the tab's own note is being worked out must still be shown
        gr.on([share_tab.select, token.change], cb.token_note, [token, lang], token_used, api_visibility="private",
              show_progress="hidden", trigger_mode="always_last")
        zip_button.click(cb.make_zip, [share_run, merge, session], zip_file, api_name="export_zip")
        push_button.click(cb.push_to_hub, [share_run, repo, private, token, session], pushed, api_name="push_to_hub")
        delete_button.click(lambda: gr.update(visible=True), None, delete_confirm, api_visibility="private")
        delete_confirm.click(cb.delete_run, [share_run, lang, session], [share_run, deleted],
                             api_name="delete_run").then(lambda: gr.update(visible=False), None, delete_confirm,
                                                         api_visibility="private")

    return demo


def launch_options() -> dict:
    """launch() arguments for the studio: port from $PORT (or GRADIO_SERVER_PORT, read by gradio)."""
    # Only exported zips may be handed out (Gradio copies them to its cache, under a hashed name);
    # runs and uploads never leave through Gradio's file route, whatever path someone asks for.
    options = dict(i18n=I18N, css=CSS, js=ON_LOAD_JS, allowed_paths=[str((WORK / "exports").resolve())],
                   blocked_paths=[str((WORK / "runs").resolve()), str((WORK / "uploads").resolve())],
                   max_file_size="200mb",  # uploads beyond this are refused by gradio before they reach us
                   theme=gr.themes.Soft(font=["Noto Sans CJK JP", "Noto Sans JP", "sans-serif"]))
    if os.environ.get("PORT"):
        options["server_port"] = int(os.environ["PORT"])
    if (ON_SPACE or os.environ.get("STUDIO_PUBLIC")) and not os.environ.get("GRADIO_SERVER_NAME"):
        options["server_name"] = "0.0.0.0"  # reachable from outside the container
    return options



# Gradio 6.31's queue looks for new events every 1 ms and for progress updates every 10 ms while
# idle (Linux): 5% of a core with no visitor at all. Every 100 ms (a request waits 50 ms more on
# average, against generations of seconds) and 500 ms (the studio reports no gr.Progress) leave an
# idle studio under 1% of a core, most of it uvicorn's and Gradio's own 10 Hz ticks
# (measured: scripts/idle_cpu.py).
QUEUE_POLL_SECONDS = 0.1
PROGRESS_POLL_SECONDS = 0.5


def quiet_when_idle(demo: gr.Blocks) -> gr.Blocks:
    """`demo` with its queue polling less often when idle (call after demo.queue(), before launch)."""
    demo._queue.sleep_when_free = QUEUE_POLL_SECONDS
    demo._queue.progress_update_sleep_when_free = PROGRESS_POLL_SECONDS
    return demo


def serve(demo: gr.Blocks, **overrides) -> gr.Blocks:
    """Queue, quiet and launch the studio; on a Space also start deleting expired files.
    `overrides`: launch() arguments (a test's port, prevent_thread_lock …)."""
    # Four requests of one kind at a time (generations: a batch's worth, set where they are wired);
    # up to 64 wait in the queue, more are told to come back rather than piling up.
    quiet_when_idle(demo.queue(default_concurrency_limit=4, max_size=64))
    if shared.OWNERS.private:
        shared.start_sweeper()
    demo.launch(**(launch_options() | overrides))
    return demo
