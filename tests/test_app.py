"""The studio's callbacks called directly, then the same actions through gradio_client against a
launched app. Everything runs offline on the embedded model, with tiny runs (block size 64)."""
import json
import os
import socket
import tempfile
import time
import zipfile
from pathlib import Path

import pytest

os.environ.setdefault("STUDIO_HOME", tempfile.mkdtemp(prefix="studio-test-"))
os.environ.setdefault("STUDIO_MODEL_ROOTS", tempfile.gettempdir())  # test folders (rinna-like) live there

import gradio as gr  # noqa: E402

import app  # noqa: E402
from finetune.models import EMBEDDED_MODEL  # noqa: E402
from finetune.runner import JobStatus  # noqa: E402
from studio import callbacks as studio, shared, view  # noqa: E402

SENTENCE = "これはペンです。これはリンゴです。"
QUICK = dict(block_size=64, batch_size=8, learning_rate=1e-3, device="cpu", seed=0)  # a few seconds per run


@pytest.fixture(scope="module")
def embedded(tiny_model):
    return tiny_model


def text_of(message: dict) -> str:
    """A chat message's text; gradio_client returns content as a list of typed parts."""
    content = message["content"]
    return content if isinstance(content, str) else "".join(part.get("text", "") for part in content)


def wait_for(predicate, timeout=120.0, every=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("timed out")


# ---------------------------------------------------------------------------------------------
# Tokens

def test_tokenize_gives_tokens_ids_counts_and_exact_spans(embedded):
    details = studio.tokenize(SENTENCE, embedded)
    assert details["count"] == len(details["ids"]) == len(details["tokens"]) > 0
    assert details["characters"] == len(SENTENCE) == 17
    assert details["chars_per_token"] == round(17 / details["count"], 2)
    assert "".join(span["text"] for span in details["spans"]) == SENTENCE
    assert details["parity"] == "ok"


def test_byte_fallback_spans_are_one_character_each(embedded):
    text = "麤鸞龘🙂"
    details = studio.tokenize(text, embedded)
    byte_spans = [s for s in details["spans"] if s["kind"] == "byte"]
    assert byte_spans, "the embedded tokenizer should spell these rare characters in bytes"
    assert all(len(s["text"]) == 1 and len(s["tokens"]) >= 2 for s in byte_spans)
    assert "".join(s["text"] for s in details["spans"]) == text


def test_token_view_html_shows_spans_ids_counts_and_comparison(embedded, rinna_like):
    a = studio.tokenize("ABC 鬱蒼としたPython🙂", embedded)
    b = studio.tokenize("ABC 鬱蒼としたPython🙂", str(rinna_like))
    html_a, html_b = studio.show_tokens(a, b, "ja")
    assert 'class="tok byte' in html_a and "トークン" in html_a
    assert ", ".join(map(str, a["ids"])) in html_a
    assert "×" in html_a and "×" in html_b           # each view compares with the other
    assert b["parity"] == "repaired" and "作り直しました" in html_b
    assert 'class="tok unk' in html_b  # no byte fallback in rinna's tokenizer: unknowns are <unk>


def test_unknown_model_is_a_japanese_error():
    with pytest.raises(gr.Error) as err:
        studio.tokenize(SENTENCE, "/no/such/folder")
    assert "モデルを読み込めません" in err.value.message


# ---------------------------------------------------------------------------------------------
# Training

def summary_rows(summary: str) -> dict[str, str]:
    """The data check's table as {item: value} (the Markdown rows under its header)."""
    rows = [line.strip("|").split("|") for line in summary.splitlines() if line.startswith("| ")]
    return {name.strip(): value.strip() for name, value in rows[1:]}


def expected_summary(path: Path, model: str, block_size: int, heldout: float) -> dict[str, str]:
    """The data check's numbers for one plain-text file, worked out here from the file and plain
    transformers' tokenizer, by the rules the README states: the file is one document, NFKC and
    trimmed; one EOS after it; the last tokens (the held-out share, at least one block) held out;
    the first part, cut mid-document, ends with an EOS of its own; tails shorter than a block dropped."""
    import math
    import unicodedata

    from transformers import AutoTokenizer
    text = unicodedata.normalize("NFKC", path.read_text(encoding="utf-8")).strip()
    total = len(AutoTokenizer.from_pretrained(model).encode(text, add_special_tokens=False)) + 1
    held = max(math.ceil(total * heldout), block_size)
    train = total - held + 1
    return {"文書": "1", "文字数": f"{len(text):,}", "トークン数": f"{train + held:,}",
            "検証用": f"{heldout:.0%}（{held // block_size} ブロック・{held // block_size * block_size:,} トークン）",
            "学習ブロック": f"{train // block_size} 個 × {block_size} トークン",
            "使われないトークン（端数）": f"{train % block_size + held % block_size:,}"}


def test_data_check_reports_numbers_and_blocks(embedded, unseen_text):
    summary, blocks = studio.check_data([str(unseen_text)], "", embedded, 64, 0.1, 42, "ja")
    dump = studio.documents_file([str(unseen_text)], "")
    expected = expected_summary(unseen_text, embedded, 64, 0.1)
    assert summary_rows(summary) == expected
    assert "`unseen-ja.txt`" in summary and f"1 文書・{expected['文字数']} 文字" in summary
    assert "ブロック 1（64 トークン）" in blocks
    assert Path(dump).name == "unseen-ja-documents.jsonl"
    assert Path(dump).parent.parent == shared.OWNERS.exports(studio.owner_of(None, None, None))


def test_pasted_text_is_used_and_no_text_is_an_error(embedded):
    summary, _ = studio.check_data(None, "短い文章です。" * 40, embedded, 64, 0.1, 42, "en")
    assert "Documents" in summary and "pasted.txt" in summary
    with pytest.raises(gr.Error) as err:
        studio.check_data(None, "  ", embedded, 64, 0.1, 42, "ja")
    assert "データに問題があります" in err.value.message


def test_cli_command_reflects_the_form(embedded, unseen_text):
    form = dict(base_model=embedded, method="lora", epochs=3, max_steps=10, learning_rate=0, batch_size=8,
                block_size=64, device="cpu", heldout=0.1, seed=42, warmup_steps=0, precision="auto", lora_r=4,
                lora_alpha=16, lora_dropout=0.05, vocab_size=6000, layers=4, width=256, heads=4)
    command = studio.cli_command([str(unseen_text)], "", *form.values())
    # As the visitor runs it in a checkout of this project: their text in my-data/, no server path.
    assert command.startswith("python -m finetune train --model assets/tiny-japanese-gpt2 --method lora "
                              "--data my-data/ --out runs/NEW-RUN ")
    assert str(Path(embedded).parent.parent) not in command and str(shared.WORK) not in command
    for part in ("--method lora", "--max-steps 10", "--block-size 64", "--device cpu", "--lora-r 4"):
        assert part in command
    scratch = studio.cli_command([str(unseen_text)], "", *{**form, "base_model": shared.SCRATCH}.values())
    assert scratch.startswith("python -m finetune scratch ") and "--model" not in scratch


def test_bad_setting_is_a_japanese_error(unseen_text, embedded):
    with pytest.raises(gr.Error) as err:
        studio.start_training([str(unseen_text)], "", embedded, "full", 3, 10, 0, -1, 64)
    assert "設定値が正しくありません" in err.value.message
    assert not shared.JOB.status().running


@pytest.fixture(scope="module")
def finished_run(embedded, unseen_text):
    """One short run through start_training, plus what a second start said meanwhile."""
    status = studio.start_training([str(unseen_text)], "", embedded, "full", max_steps=10, **QUICK)
    assert status["state"] == "running"
    with pytest.raises(gr.Error) as busy:
        studio.start_training([str(unseen_text)], "", embedded, "full", max_steps=10, **QUICK)
    final = shared.JOB.wait(300).to_dict()
    return final, busy.value.message


def test_training_finishes_with_metrics_and_a_plot(finished_run):
    status, _ = finished_run
    assert status["state"] == "done", status["error"]
    assert status["metrics"]["steps"] == 10
    assert status["metrics"]["heldout_perplexity_after"] < status["metrics"]["heldout_perplexity_before"]
    assert status["train_loss"] and status["heldout_loss"][0][0] == 0
    progress, frame, log, result, shown, run = studio.show_status(status, "ja", "", "")
    assert 'data-state="done"' in progress and "100%" in progress
    assert set(frame["series"]) == {"学習", "検証"} and len(frame) >= 3
    assert "step 10/10" in log and "検証パープレキシティ" in result and run == status["out"]
    assert studio.show_status(status, "ja", shown, run)[0] == gr.skip()  # unchanged since the last poll
    assert "python -m finetune train" in status["command"] and "--max-steps 10" in status["command"]
    assert str(shared.WORK.resolve()) not in status["command"] and "/" + "assets" not in status["command"]
    assert status["log"][0].startswith("start: assets/tiny-japanese-gpt2 (full)")  # no install path in the log


def test_second_start_is_told_a_job_is_running(finished_run):
    _, message = finished_run
    assert "別の学習が実行中です" in message


def test_generate_streams_and_compare_uses_the_same_seed(finished_run, embedded):
    run = finished_run[0]["out"]
    steps = list(studio.generate("「科学」とは", run, "complete", 12, 0.8, 0.95, 50, 1.1, 3, None))
    assert len(steps) > 1                        # streamed: several partial histories
    final = steps[-1]
    assert final[0] == {"role": "user", "content": "「科学」とは"}
    assert final[1]["role"] == "assistant" and len(final[1]["content"]) > 1
    pairs = list(studio.compare("「科学」とは", embedded, run, "complete", 12, 0.8, 0.95, 50, 1.1, 3, None, None))
    base, tuned = pairs[-1]
    assert tuned[1]["content"] == final[1]["content"]  # same model, prompt and seed: same text
    assert base[1]["content"] != "…"


def engine_reply(run: str, prompt: str, **sampling) -> str:
    """What the engine's own `generate` writes after `prompt` with the model in `run`, loaded afresh
    (not through the studio's cache), with the studio's default sampling unless `sampling` says."""
    from finetune.generate import GenerationSettings, generate
    from finetune.models import load_model, load_tokenizer_for, resolve_source
    source = resolve_source(run)
    model, (tokenizer, _) = load_model(source).eval(), load_tokenizer_for(source)
    return generate(model, tokenizer, prompt, GenerationSettings(**sampling))


def test_qa_mode_gives_the_model_the_training_template(finished_run):
    """The question goes to the model inside the template Q&A pairs were trained with (finetune.qa),
    shown as asked; the answer is what the engine writes after that template with the same seed."""
    from finetune.qa import prompt_for
    run, question = finished_run[0]["out"], "日本でいちばん高い山は？"
    sampling = dict(max_new_tokens=8, temperature=0.8, top_p=0.95, top_k=50, repetition_penalty=1.1, seed=0)
    asked, answered = list(studio.generate(question, run, "qa", *sampling.values(), None))[-1]
    templated = engine_reply(run, prompt_for(question), **sampling).strip()
    assert asked == {"role": "user", "content": question}
    assert answered == {"role": "assistant", "content": templated or "（…）"}
    assert templated != engine_reply(run, question, **sampling).strip()  # the template matters here


def test_zip_holds_a_loadable_model(finished_run, embedded, tmp_path):
    """The zip, unpacked, loads in plain transformers as the trained model (its weights are the
    run's, not the base's) and continues a prompt as the studio does (greedy, no penalty)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from conftest import assert_trained_model
    run = finished_run[0]["out"]
    with zipfile.ZipFile(studio.make_zip(run, False)) as zipped:
        zipped.extractall(tmp_path)
    folder = next(tmp_path.rglob("config.json")).parent
    model = assert_trained_model(folder, base=embedded).eval()
    trained = AutoModelForCausalLM.from_pretrained(run).state_dict()
    assert all(torch.equal(weight, trained[name]) for name, weight in model.state_dict().items())
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    prompt = tokenizer("「科学」とは", add_special_tokens=False, return_tensors="pt").input_ids
    with torch.no_grad():
        out = model.generate(prompt, max_new_tokens=12, do_sample=False, repetition_penalty=1.0)
    continued = tokenizer.decode(out[0, prompt.shape[1]:], skip_special_tokens=True)
    studio_reply = list(studio.generate("「科学」とは", run, "complete", 12, 0, 1, 0, 1.0, 0, None))[-1][1]
    assert continued and studio_reply["content"] == "…" + continued


def test_push_offline_says_so_in_japanese(finished_run):
    with pytest.raises(gr.Error) as err:
        studio.push_to_hub(finished_run[0]["out"], "my-model", True, "", None)
    assert "オフライン" in err.value.message
    assert "ZIP" in studio.hub_note("ja")


def test_cancel_stops_early_and_keeps_the_trained_model(finished_run, embedded, unseen_text):
    """Cancel through the studio (its line, studio/queue.py, passes it to the owner's running job):
    the run stops long before its 500 steps and saves what it learned, at the step it stopped at."""
    from conftest import assert_trained_model
    studio.start_training([str(unseen_text)], "", embedded, "full", max_steps=500, **QUICK)
    wait_for(lambda: shared.JOB.status().step >= 1)
    assert studio.cancel_training()["state"] in ("stopping", "stopped")
    status = shared.JOB.wait(120)
    assert status.state == "stopped" and status.step < 500
    assert status.metrics["stopped_early"] and status.metrics["steps"] == status.step
    assert_trained_model(status.out, base=embedded)
    assert studio.training_status()["state"] == "stopped"
    assert "キャンセル" in view.result_markdown(status.to_dict(), "ja")


@pytest.mark.parametrize("base, method", [(shared.SCRATCH, "full"), (None, "lora")])
def test_scratch_and_lora_runs_train_and_generate(base, method, embedded, unseen_text, finished_run):
    tiny_shape = dict(vocab_size=1000, layers=1, width=32, heads=2)  # seconds, not minutes
    studio.start_training([str(unseen_text)], "", base or embedded, method, max_steps=3, **QUICK, **tiny_shape)
    status = shared.JOB.wait(300)
    assert status.state == "done", status.error
    assert status.metrics["method"] == method
    assert status.metrics["base_model"] == ("scratch" if base else embedded)
    assert studio.run_base(status.out) == embedded   # the playground's "before" side
    # The run's own model (with its own tokenizer from scratch; a LoRA adapter on its base) continued
    # the prompt: the engine, loading the folder afresh, writes the same text. Greedy: the model from
    # scratch is nearly untrained, and with its flat distributions a sampled token can change with
    # the last bit of a batched product (finetune/generate.py).
    reply = list(studio.generate("灯台の", status.out, "complete", 5, 0, 1, 0, 1.0, 0, None))[-1]
    continued = engine_reply(status.out, "灯台の", max_new_tokens=5, temperature=0, top_p=1, top_k=0,
                             repetition_penalty=1.0)
    assert continued and reply[1]["content"] == "…" + continued


def test_idle_status_renders():
    assert "まだ" in view.progress_html(JobStatus().to_dict(), "ja")


def test_the_idle_queue_polls_less_often():
    """Gradio's own idle polling (every 1 ms) is what kept an idle studio busy; a Gradio upgrade that
    renames these attributes would silently undo the fix, so their defaults are checked too."""
    from studio.page import PROGRESS_POLL_SECONDS, QUEUE_POLL_SECONDS, quiet_when_idle
    fresh = app.demo.queue()._queue
    assert fresh.sleep_when_free < QUEUE_POLL_SECONDS and fresh.progress_update_sleep_when_free < PROGRESS_POLL_SECONDS
    quiet = quiet_when_idle(app.demo.queue())._queue
    assert (quiet.sleep_when_free, quiet.progress_update_sleep_when_free) == (QUEUE_POLL_SECONDS, PROGRESS_POLL_SECONDS)


def test_a_waiting_job_shows_its_place_and_wait():
    waiting = JobStatus(state="queued", position=2, wait_seconds=200).to_dict()
    shown = view.progress_html(waiting, "ja")
    assert 'data-state="queued"' in shown and "2 番目（前に 1 件）" in shown and "約 3:20" in shown
    assert "number 2 in line" in view.progress_html(waiting, "en")
    assert "見積もれます" in view.progress_html({**waiting, "wait_seconds": None}, "ja")


# ---------------------------------------------------------------------------------------------
# The same through gradio_client

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(embedded):
    """The studio launched with its own launch options; its URL."""
    port = free_port()
    app.demo.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                            **app.launch_options())
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        app.demo.close()


@pytest.fixture(scope="module")
def client(served):
    from gradio_client import Client
    return Client(served, verbose=False)


def upload(url: str, name: str, size: int):
    """POST a file of `size` zero bytes to Gradio's upload route, streamed (never held in memory)."""
    import httpx
    boundary = "studio-test-boundary"
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
            "Content-Type: text/plain\r\n\r\n").encode()

    def body():
        yield head
        chunk = bytes(1 << 20)
        for start in range(0, size, len(chunk)):
            yield chunk[:min(len(chunk), size - start)]
        yield f"\r\n--{boundary}--\r\n".encode()

    return httpx.post(f"{url}gradio_api/upload", content=body(), timeout=120,
                      headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})


def test_uploads_over_200_mb_are_refused_by_the_server(served):
    """The studio's upload limit (launch_options' max_file_size): Gradio stops reading a file at
    200 MB and answers 413, so nothing bigger reaches the studio; a small upload goes through."""
    small = upload(served, "small.txt", 1000)
    assert small.status_code == 200 and len(small.json()) == 1 and small.json()[0].endswith("small.txt")
    limit = 200 * 1024 * 1024   # gradio reads "200mb" as MiB
    refused = upload(served, "huge.txt", limit + 1)
    assert refused.status_code == 413 and "maximum allowed size" in refused.text


def test_offline_default_model_is_embedded_with_a_note(monkeypatch):
    from finetune.hubmodels import OFFLINE_MODE
    assert shared.HUB_CHOICE.reason == OFFLINE_MODE and shared.PREFETCH is None
    assert shared.default_model() == EMBEDDED_MODEL
    notes = {b.elem_id: b.value for b in app.demo.blocks.values() if b.elem_id in ("base-model-note", "tok-model-note")}
    assert set(notes) == {"base-model-note", "tok-model-note"}
    from studio.text import say
    assert "HF_HUB_OFFLINE" in say("ja", "model_note_offline-mode") and "HF_HUB_OFFLINE" in say("en", "model_note_offline-mode")


def test_visitor_token_is_never_none_on_a_space(monkeypatch):
    assert shared.visitor_token(None) is None   # locally: this machine's own login
    monkeypatch.setattr(shared.OWNERS, "private", True)
    assert shared.visitor_token(None) is False
    assert shared.visitor_token(gr.OAuthToken(token="hf_visitor", scope="openid", expires_at=0)) == "hf_visitor"


def test_client_tokenize_with_default_model(client):
    result = client.predict(SENTENCE, api_name="/tokenize")
    assert result["tokens"] and len(result["ids"]) == len(result["tokens"]) == result["count"]
    assert result["model"] == EMBEDDED_MODEL


def test_client_start_status_cancel_generate(client, unseen_text, embedded, finished_run):
    from gradio_client import handle_file
    started = client.predict(files=[handle_file(str(unseen_text))], base_model=embedded, max_steps=300,
                             block_size=64, learning_rate=1e-3, device="cpu", api_name="/start_training")
    assert started["state"] == "running"
    wait_for(lambda: client.predict(api_name="/training_status")["step"] >= 1, timeout=180, every=1)
    client.predict(api_name="/cancel_training")
    status = wait_for(lambda: (s := client.predict(api_name="/training_status"))["state"] != "stopping"
                      and s["state"] != "running" and s, timeout=60, every=1)
    assert status["state"] == "stopped" and status["metrics"]["stopped_early"]
    history = client.predict("「科学」とは", status["out"], api_name="/generate")
    assert history[-1]["role"] == "assistant" and len(text_of(history[-1])) > 1
    base, tuned = client.predict("「科学」とは", embedded, status["out"], api_name="/compare")
    assert base[-1]["role"] == tuned[-1]["role"] == "assistant"
    assert text_of(tuned[-1]) != "…"


def test_client_gets_the_documents_file_of_its_check(client, embedded):
    from gradio_client import handle_file
    export = handle_file(str(Path(__file__).parent / "data" / "exports" / "hatena.export.txt"))
    assert client.predict(files=[export], titles=True, api_name="/documents_file") is None   # no check yet
    summary, _ = client.predict(files=[export], base_model=embedded, block_size=64, titles=True,
                                api_name="/prepare_data")
    assert "はてなブログ / Movable Type・記事 2 件" in summary
    got = Path(client.predict(files=[export], titles=True, api_name="/documents_file"))
    assert got.name == "hatena.export-documents-titles.jsonl"
    assert got.read_text(encoding="utf-8").startswith('{"source": "hatena.export.txt#1", "title": "商店街の古本市"')


def test_client_passes_the_authors_to_the_check_and_the_documents_file(client, embedded):
    from gradio_client import handle_file
    export = handle_file(str(Path(__file__).parent / "data" / "exports" / "hatena.export.txt"))
    summary, _ = client.predict(files=[export], base_model=embedded, block_size=64, authors="山田",
                                api_name="/prepare_data")
    assert "ほかの著者の記事 2 件" in summary   # 山田 wrote a comment, not a post
    assert client.predict(files=[export], authors="山田", api_name="/documents_file") is None
    client.predict(files=[export], base_model=embedded, block_size=64, authors="KAZE-no-tayori",
                   api_name="/prepare_data")
    got = Path(client.predict(files=[export], authors="KAZE-no-tayori", api_name="/documents_file"))
    assert got.name == "hatena.export-documents-by-KAZE_no_tayori.jsonl" and len(got.read_text().splitlines()) == 2


def test_client_resume_says_why_when_there_is_nothing_to_resume(client):
    with pytest.raises(Exception) as err:
        client.predict("", api_name="/resume_training")  # "": the newest interrupted run
    assert "no interrupted run" in str(err.value)


def test_api_names_are_listed_in_docs(client):
    documented = (Path(__file__).resolve().parent.parent / "docs" / "api.md").read_text(encoding="utf-8")
    names = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    for name in ("/tokenize", "/start_training", "/training_status", "/cancel_training", "/resume_training",
                 "/generate", "/compare"):
        assert name in names
    assert all(f"`{name}`" in documented for name in names), names


@pytest.mark.parametrize("kind, ja, en", [("OutOfMemory", "メモリが足りません", "Out of memory"),
                                          ("DiskFull", "ディスクが一杯", "The disk is full")])
def test_resource_failures_are_explained_in_both_languages(kind, ja, en):
    status = {"state": "error", "error": "out of memory in CPU memory while training: lower the batch size",
              "error_kind": kind}
    assert ja in view.result_markdown(status, "ja") and en in view.result_markdown(status, "en")


def test_an_interrupted_run_is_offered_and_resumed(finished_run, embedded, unseen_text, client):
    """A run the app was training when it was restarted (the new app's job never saw it): shown,
    then resumed through the API as the Resume button does."""
    from conftest import crashed_run
    folder = crashed_run(embedded, unseen_text, shared.JOB.runs_dir / "run-interrupted")
    box, runs = studio.interrupted_view("ja")
    assert box["visible"] and runs["value"] == str(folder)
    assert "ステップ 6/8" in runs["choices"][0][0] and "checkpoint-4" in runs["choices"][0][0]
    assert "stopped at step 6/8" in studio.interrupted_view("en")[1]["choices"][0][0]
    status = client.predict(str(folder), api_name="/resume_training")
    assert status["state"] == "running" and "--resume" in status["command"]
    final = shared.JOB.wait(300)
    assert final.state == "done", final.error
    assert final.metrics["steps"] == 8 and final.out == str(folder)
    # Continued from checkpoint-4 in the same folder, not started over: the log goes on after a
    # "resume" event with steps past checkpoint-4 (steps are logged every 2 here).
    from finetune.runner import read_events
    events = read_events(folder / "progress.jsonl")
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds.count("resume") == 1
    after = [e["step"] for e in events[kinds.index("resume"):] if e["event"] == "step"]
    assert 4 < after[0] <= 6 and after[-1] == 8
    assert studio.interrupted_view("ja")[0]["visible"] is False
    with pytest.raises(gr.Error) as err:
        studio.resume_training()
    assert "no interrupted run" in err.value.message


def test_generations_run_as_many_at_once_as_a_batch_holds():
    from finetune.batching import BATCHER
    limits = {f.api_name or f.name: f.concurrency_limit for f in app.demo.fns.values()
              if (f.api_name or f.name) in ("generate", "compare", "generate_single", "compare_pair")}
    assert limits == dict.fromkeys(("generate", "compare", "generate_single", "compare_pair"), BATCHER.max_batch)


def test_qlora_is_offered_only_where_it_trains_and_shows_the_lora_settings():
    from finetune.models import qlora_problem
    method = next(b for b in app.demo.blocks.values() if b.elem_id == "method")
    assert (("QLoRA", "qlora") in [tuple(c) for c in method.choices]) == (qlora_problem("cuda") is None)
    assert studio.method_fields(EMBEDDED_MODEL, "qlora")[0]["visible"] is True
    assert studio.method_fields(EMBEDDED_MODEL, "full")[0]["visible"] is False


def test_blog_export_options_reach_the_data_check_and_the_command(embedded):
    export = str(Path(__file__).parent / "data" / "exports" / "wordpress.xml")
    plain, _ = studio.check_data([export], "", embedded, 64, 0.1, 42, "en")
    assert "posts: 2" in plain and "Left out:" in plain and "Include drafts and unpublished posts" in plain
    assert studio.documents_file([export], "", None, True, True, True, True) is None   # not checked with these yet
    full, _ = studio.check_data([export], "", embedded, 64, 0.1, 42, "en", None, True, True, True, True)
    dump = studio.documents_file([export], "", None, True, True, True, True)
    assert full != plain and Path(dump).name == "wordpress-documents-drafts-comments-titles-code.jsonl"
    assert Path(dump).read_text(encoding="utf-8") != Path(studio.documents_file([export], "")).read_text(encoding="utf-8")
    command = studio.cli_command([export], "", embedded, include_drafts=True, include_comments=True, titles=True,
                                 keep_code=True)
    for flag in ("--include-drafts", "--include-comments", "--titles", "--keep-code"):
        assert flag in command
    settings, _ = studio.train_form("d", embedded, "full", 1, 1, 0, 0, 64, "cpu", 0.1, 0, 0, "auto", 8, 16, 0.05,
                                    6000, 4, 256, 4, studio.reading_options(True, False, True, False))
    assert settings.reading.include_drafts and settings.reading.titles and not settings.reading.keep_code


def test_the_documents_file_is_the_engines_dump_named_inside_the_upload(embedded, tmp_path, monkeypatch):
    """The download is what `prepare --dump` writes for the same zip, run where the zip is: the same
    documents in the same order, sources named inside the upload (no server folder in the file or
    the summary)."""
    from finetune.prepare import PrepareSettings, prepare
    exports = Path(__file__).parent / "data" / "exports"
    blog = tmp_path / "ブログ.zip"
    with zipfile.ZipFile(blog, "w") as z:
        for name in ("hatena.export.txt", "wordpress.xml", "zenn-article.md"):
            z.write(exports / name, name)
        for path in sorted((exports / "medium").rglob("*.html")):
            z.write(path, str(path.relative_to(exports)))
    summary, _ = studio.check_data([str(blog)], "", embedded, 64, 0.1, 42, "ja", None, False, False, True, False)
    dump = Path(studio.documents_file([str(blog)], "", None, False, False, True, False))
    monkeypatch.chdir(tmp_path)
    prepare(PrepareSettings(data=["ブログ.zip"], model=embedded, block_size=64, titles=True, dump="engine.jsonl"))
    assert dump.name == "ブログ-documents-titles.jsonl"
    assert dump.read_bytes() == (tmp_path / "engine.jsonl").read_bytes()
    assert '"source": "ブログ.zip/hatena.export.txt#1"' in dump.read_text(encoding="utf-8")
    uploads = str(shared.OWNERS.uploads(studio.owner_of(None, None, None)))
    assert uploads not in summary and "`ブログ.zip/medium/posts/draft_冬の計画-9a8b7c6d5e4f.html`: 公開済みの記事はありません" in summary
    # Per file: posts, and what was left out with the box that brings it back, said once.
    assert "`ブログ.zip/wordpress.xml`: WordPress / note・記事 2 件" in summary
    assert "読者のコメント 1 件、" in summary and "「読者のコメントも使う」「下書き・非公開の記事も使う」にチェックすると使えます" in summary
    assert "除外：" not in summary and "--include" not in summary


def test_no_documents_file_for_a_failed_check_or_no_text(embedded, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n", encoding="utf-8")
    summary, _ = studio.check_data([str(empty)], "", embedded, 64, 0.1, 42, "ja")
    assert studio.documents_file([str(empty)], "") is None      # nothing usable: no empty file offered
    assert "- ✗ `empty.txt`: 空白しか含まれていない空のファイルです" in summary and "使えるテキストがありません" in summary
    assert str(tmp_path) not in summary and summary.count("- ✗") == 1    # not the upload's folder itself
    assert studio.documents_file(None, "") is None
    assert studio.check_data_if_given(None, "", embedded, 64, 0.1, 42, "ja") == ("", view.block_preview(None, "ja"))


def test_authors_field_changes_the_summary_the_command_and_the_documents_file(embedded, tmp_path):
    from test_formats import TEAM_MT
    export = tmp_path / "team.export.txt"
    export.write_text(TEAM_MT, encoding="utf-8")
    everyone, _ = studio.check_data([str(export)], "", embedded, 64, 0.1, 42, "ja")
    assert "  - 著者：Yama 2 件、田中 1 件（「著者で絞る」に名前を入れると、その著者の記事だけを使います）" in everyone
    assert "人の著者の記事があります" not in everyone          # the engine's warning, said once by the line above
    all_posts = Path(studio.documents_file([str(export)], ""))
    assert studio.documents_file([str(export)], "", None, False, False, False, False, "田中") is None   # not checked yet
    only, _ = studio.check_data([str(export)], "", embedded, 64, 0.1, 42, "ja", None, False, False, False, False, "田中")
    assert "・記事 2 件" in only and "  - 著者：Yama 2 件、田中 1 件\n" in only
    assert "ほかの著者の記事 2 件" in only
    assert "（「読者のコメントも使う」「下書き・非公開の記事も使う」にチェックするか、「著者で絞る」に名前を加えると使えます）" in only
    dump = Path(studio.documents_file([str(export)], "", None, False, False, False, False, "田中"))
    assert dump.name == "team.export-documents-by-田中.jsonl" and dump.parent != all_posts.parent
    assert [json.loads(line)["text"] for line in dump.read_text(encoding="utf-8").splitlines()] == [
        "砂浜で貝がらを拾った。", "名前のない記事も使われる。"]
    assert len(all_posts.read_text(encoding="utf-8").splitlines()) == 4
    english, _ = studio.check_data([str(export)], "", embedded, 64, 0.1, 42, "en", None, False, False, False, False,
                                   "yama、 田中")
    assert "  - Authors: Yama: 2, 田中: 1\n" in english and "Left out:" in english and "other authors" not in english
    assert view.left_out_line({"other_author": 1}, "en") == (
        "Left out: posts by other authors: 1 (add their names to “Only these authors” to use them)")
    assert view.left_out_line({"other_author": 1, "page": 2}, "ja") == (
        "使わなかったもの：ほかの著者の記事 1 件、固定ページ 2 件（「著者で絞る」に名前を加えると使えます）")
    command = studio.cli_command([str(export)], "", embedded, authors="Yama, 田中 花子")
    assert "--author Yama --author '田中 花子'" in command
    settings, _ = studio.train_form("d", embedded, "full", 1, 1, 0, 0, 64, "cpu", 0.1, 0, 0, "auto", 8, 16, 0.05,
                                    6000, 4, 256, 4, studio.reading_options(False, False, False, False, " a ,、b"))
    assert settings.reading.authors == ("a", "b") and studio.reading_options(authors=None).authors == ()
    field = next(b for b in app.demo.blocks.values() if getattr(b, "elem_id", None) == "authors")
    assert field.label.key == "authors" and field.value == ""
    from studio.text import I18N
    assert I18N.translations_dict["ja"]["authors"] == "著者で絞る（カンマ区切り、空ならすべて）"
    assert I18N.translations_dict["en"]["authors"] == "Only these authors (comma-separated; empty: all)"
