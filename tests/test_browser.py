"""The studio in a real browser: headless Chromium (Debian's) drives `python app.py`, offline, with the
embedded model, through the whole journey: tokens, upload, train, cancel, finish, compare, stop a
long reply, Q&A mode, zip. A blogger's export zip on the same app: the summary says what was left
out, and the documents file the page offers is the engine's `prepare --dump` for the same options.
Then an app started online against the loopback Hub stub (tests/hub_stub.py) where an earlier app
left a run half done: the run is offered, resumed from its checkpoint, and pushed to the stub.
Then two visitors with no shared login on one app started as a Space (SPACE_ID, the OAuth
variables, the owner's HF_TOKEN; the loopback Hub stub): neither sees nor stops the other's run,
and an anonymous push never uses the server's token.

Screenshots of every tab go to tests/artifacts/ (ignored by git) and the final ones to
docs/screenshots/ for the README.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from conftest import ROOT, UNSEEN
from hub_stub import HubStub, serve_model_repos
from space_env import OWNER_TOKEN, OpenIdProvider, log_tail, space_env, start_app
from space_env import free_port, wait_until_serving

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "tests" / "artifacts"
SCREENSHOTS = ROOT / "docs" / "screenshots"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--no-first-run", "--disable-sync"]
TRAINING = 120_000  # ms; a few steps of the embedded model on 2 CPU cores take seconds, loading more

APPS: dict[str, subprocess.Popen] = {}  # the running apps, whose logs a failed test prints

pytestmark = pytest.mark.skipif(not CHROMIUM.is_file(), reason="Debian's chromium (/usr/bin/chromium) is not installed")


# The journey's app decodes each token DECODE_DELAY seconds slower (its launcher wraps the generation
# worker's step, finetune.generate.Batch.step): without it the worker (which decodes ahead of the
# stream) writes the embedded model's 400 tokens before a click on Stop reaches the server; a Stop
# pressed as soon as the reply showed, or right after Send, left the whole reply.
DECODE_DELAY = 0.02
SLOW_DECODING_APP = """
import runpy, sys, time
from finetune.generate import Batch
step = Batch.step
def slow_step(self):
    time.sleep({delay})
    return step(self)
Batch.step = slow_step
sys.argv = ["app.py"]
runpy.run_path("app.py", run_name="__main__")
"""


@pytest.fixture(scope="module")
def studio(tiny_model, tmp_path_factory):
    """`python app.py` on a free port, offline, with its work folder under tmp (decoding slowed down:
    see DECODE_DELAY)."""
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_SERVER_PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False",
           "STUDIO_HOME": str(tmp_path_factory.mktemp("studio")),
           "STUDIO_MODEL_ROOTS": str(tmp_path_factory.getbasetemp())}  # the rinna-like test folder
    env.pop("PORT", None)
    server = start_app(env, ARTIFACTS / "studio.log", ["-c", SLOW_DECODING_APP.format(delay=DECODE_DELAY)])
    try:
        wait_until_serving(f"http://127.0.0.1:{port}/", server)
        APPS["studio"] = server
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture(autouse=True)
def app_logs_on_failure(request):
    """A failed journey shows what the app said (its log also stays in tests/artifacts/)."""
    yield
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        for name, server in APPS.items():
            print(f"--- the last lines of {name}'s log ({server.log}) ---\n{log_tail(server)}")


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def page(studio, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page.set_default_timeout(30_000)
    page.goto(studio)
    yield page
    page.close()


def screenshot(page, name: str, publish: bool = False):
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if publish and os.environ.get("UPDATE_SCREENSHOTS"):  # refresh the README's pictures on request only
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, SCREENSHOTS / f"{name}.png")


def open_tab(page, label: str):
    page.get_by_role("tab", name=label).click()


def set_number(page, elem_id: str, value):
    field = page.locator(f"#{elem_id} input[type=number]")
    field.fill(str(value))
    field.press("Tab")


def choose_model(page, elem_id: str, value: str):
    """Type a Hub id or folder into a model dropdown."""
    field = page.locator(f"#{elem_id} input")
    field.fill(value)
    field.press("Enter")


def wait_until_still(page, selector: str, quiet: float = 2.0, timeout: float = 120):
    """Wait until an element's text stops changing (a streamed reply has finished)."""
    deadline, last, since = time.monotonic() + timeout, None, time.monotonic()
    while time.monotonic() < deadline:
        text = page.locator(selector).inner_text()
        if text != last:
            last, since = text, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return text
        time.sleep(0.25)
    raise AssertionError(f"{selector} kept changing")


REPLY = '#chat [data-testid="bot"]'   # the reply in the playground's single chat (cleared before each use)


def set_slider(page, label: str, value: int):
    """Type a value into a slider's number box until the slider itself shows it (seen once on a busy
    machine: the first typing, right after its accordion opened, was not taken)."""
    from playwright.sync_api import expect
    slider = page.locator(".block", has=page.get_by_text(label, exact=True)).last   # the innermost block
    field, bar = slider.locator("input[type=number]"), slider.locator("input[type=range]")
    for attempt in range(3):
        field.fill(str(value))
        field.press("Tab")
        try:
            expect(bar).to_have_value(str(value), timeout=5_000)
            return
        except AssertionError:
            if attempt == 2:
                raise


def squeezed(text: str) -> str:
    """Text without whitespace: the page shows a reply as rendered Markdown, the API as written."""
    return "".join(text.split())


def text_of(message: dict) -> str:
    """A chat message's text; gradio_client returns content as a list of typed parts."""
    content = message["content"]
    return content if isinstance(content, str) else "".join(part.get("text", "") for part in content)


CLIENTS: dict = {}


def api(url: str):
    """A gradio_client Client of the app at `url` (one per app)."""
    from gradio_client import Client
    if url not in CLIENTS:
        CLIENTS[url] = Client(url, verbose=False)
    return CLIENTS[url]


def dismiss_messages(page):
    """Close the error/warning pop-ups so that they do not cover the screenshots."""
    for close in page.locator(".toast-close").all():
        close.click()
    page.locator(".toast-body").first.wait_for(state="detached", timeout=15_000)


def job_state(page, state: str, timeout: int = TRAINING):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    try:
        page.locator(f'#progress .job[data-state="{state}"]').wait_for(timeout=timeout)
    except PlaywrightTimeout:
        screenshot(page, f"failed-waiting-for-{state}")
        shown = page.locator("#progress").inner_html(timeout=5_000)
        log = page.locator("#log textarea").input_value(timeout=5_000)
        raise AssertionError(f"the job never showed {state!r}; the progress panel shows:\n{shown}\n"
                             f"and the log ends:\n{log[-1500:]}") from None


def test_journey(page, studio, tmp_path, rinna_like):
    # 1. Tokens: type a sentence, see its spans, ids and counts (the UI is Japanese by default).
    page.get_by_role("tab", name="トークン").wait_for()
    sentence = "吾輩は猫である。名前は龘（とう）。"  # 龘 is in no vocabulary here: bytes, or <unk>
    page.locator("#sentence textarea").fill(sentence)
    view = page.locator("#tokens-a")
    page.wait_for_function("text => document.querySelector('#tokens-a .tokens')?.textContent === text", arg=sentence)
    assert view.locator(".tok").count() >= 5
    assert view.locator(".tok.byte").count() >= 1            # spelled in bytes, shown as one span
    assert "トークン" in view.locator(".counts").inner_text()
    assert view.locator(".ids").inner_text().startswith("[")
    page.locator("#compare-on input").check()
    # rinna/japanese-gpt2-xsmall (the default second tokenizer) is not reachable offline: say so …
    page.locator(".toast-body").filter(has_text="モデルを読み込めません").first.wait_for()
    screenshot(page, "1-tokens-offline-error")
    # … and compare with a rinna-shaped tokenizer folder instead, typed in as a path.
    choose_model(page, "tok-model-b", str(rinna_like))
    page.locator("#tokens-b .tok").first.wait_for()
    assert page.locator("#tokens-b .tok.unk").count() >= 1   # no byte fallback there: 龘 is <unk>
    dismiss_messages(page)
    screenshot(page, "1-tokens", publish=True)

    # 2. Training: upload a text, see the data summary and block preview.
    open_tab(page, "学習")
    page.locator("#files input[type=file]").set_input_files(str(UNSEEN))
    page.locator("#data-summary table").wait_for(timeout=60_000)
    assert "unseen-ja.txt" in page.locator("#data-summary").inner_text()
    page.locator("#block-preview code").first.wait_for()
    set_number(page, "block-size", 64)
    page.locator("#block-preview").filter(has_text="64 トークン").wait_for(timeout=60_000)  # checked again
    set_number(page, "learning-rate", 0.001)

    # … a long run: watch the loss plot get points, then cancel it.
    set_number(page, "max-steps", 400)
    page.wait_for_function("() => document.querySelector('#cli-command')?.textContent.includes('--max-steps 400')")
    page.locator("#start").click()
    page.wait_for_function("() => document.querySelector('#log textarea')?.value.includes('step 20/')",
                           timeout=TRAINING)
    page.locator("#loss-plot .mark-line path").first.wait_for()   # the plot has drawn its loss lines
    screenshot(page, "2-training-running")
    page.locator("#cancel").click()
    job_state(page, "stopped", timeout=60_000)
    assert "キャンセル" in page.locator("#result").inner_text()

    # … a short run to the end: before/after perplexity.
    set_number(page, "max-steps", 12)
    page.wait_for_function("() => document.querySelector('#cli-command')?.textContent.includes('--max-steps 12')")
    page.locator("#start").click()
    job_state(page, "running", timeout=30_000)
    job_state(page, "done")
    page.wait_for_function("() => document.querySelectorAll('#loss-plot .mark-line path').length >= 2")  # both curves
    result = page.locator("#result").inner_text()
    assert "検証パープレキシティ" in result and "→" in result
    screenshot(page, "2-training", publish=True)

    # 3. Playground: base and fine-tuned side by side on one prompt and seed.
    open_tab(page, "試す")
    page.locator("#side-by-side input").check()
    page.locator("#send-compare").wait_for()
    page.locator("#prompt textarea").fill("「科学」とは")
    page.locator("#send-compare").click()
    for chat in ("#chat-base", "#chat-tuned"):
        page.wait_for_function(
            "sel => { const t = document.querySelector(sel)?.innerText || ''; return t.includes('「科学」とは') && t.split('…').length > 1 && t.trim().length > 12; }",
            arg=chat, timeout=TRAINING)
    wait_until_still(page, "#chat-tuned")
    screenshot(page, "3-playground", publish=True)
    run = re.search(r"保存先：\s*(\S+)", result).group(1)   # the finished run, as the result names it

    # … Stop: a long reply, stopped once it shows, stays as it was when stopped: the start of the same
    # reply uncut (same model, prompt and seed, asked through the API), and shorter.
    page.locator("#side-by-side input").uncheck()
    page.locator("#send").wait_for()
    page.get_by_text("生成の設定").first.click()   # the sampling accordion
    set_slider(page, "生成する最大トークン数", 400)
    prompt = "昔々、ある海辺の町に"
    page.locator("#prompt textarea").fill(prompt)
    page.locator("#send").click()
    page.wait_for_function("sel => (document.querySelector(sel)?.innerText || '').length > 3", arg=REPLY)
    page.locator("#stop").click()
    stopped = squeezed(wait_until_still(page, REPLY, quiet=3))
    uncut = squeezed(text_of(api(studio).predict(prompt, run, "complete", 400, api_name="/generate")[-1]))
    assert uncut.startswith(stopped) and len(stopped) < len(uncut), (stopped, uncut)

    # … Q&A mode: the question is answered (as the API answers it in Q&A mode), not continued.
    page.locator("#clear").click()
    page.locator(REPLY).wait_for(state="detached")
    set_slider(page, "生成する最大トークン数", 24)
    page.locator("#mode label").filter(has_text="質問に答える").click()
    question = "日本でいちばん高い山は？"
    page.locator("#prompt textarea").fill(question)
    page.locator("#send").click()
    page.wait_for_function("sel => (document.querySelector(sel)?.innerText || '').trim().length > 0", arg=REPLY)
    answer = squeezed(wait_until_still(page, REPLY))
    expected = text_of(api(studio).predict(question, run, "qa", 24, api_name="/generate")[-1])
    assert answer == squeezed(expected) and not answer.startswith("…")
    assert squeezed(page.locator('#chat [data-testid="user"]').last.inner_text()) == question
    screenshot(page, "3-playground-qa")

    # 4. Share: the finished run as a zip, downloaded by the browser.
    open_tab(page, "共有")
    page.locator("#hub-state").filter(has_text="ZIP").wait_for()
    page.locator("#make-zip").click()
    link = page.locator("#zip-file a").first
    link.wait_for(timeout=60_000)
    with page.expect_download() as download:
        link.click()
    saved = tmp_path / "model.zip"
    download.value.save_as(saved)
    assert any(n.endswith("model.safetensors") for n in zipfile.ZipFile(saved).namelist())
    screenshot(page, "4-share", publish=True)


def test_english_switch(page, studio):
    page.goto(studio + "?lang=en")
    page.get_by_role("tab", name="Training").wait_for()
    page.locator("#tokens-a .counts").filter(has_text="tokens").wait_for()
    screenshot(page, "5-english")


# ---------------------------------------------------------------------------------------------
# A blogger's export zip: what is left out, and the documents file the page offers

EXPORTS = ROOT / "tests" / "data" / "exports"


def blog_export_zip(path: Path) -> Path:
    """A zip of several services' exports, as a blogger might gather them: Hatena Blog, WordPress,
    a Medium folder (a post, a draft, the profile page), a Zenn article."""
    with zipfile.ZipFile(path, "w") as z:
        for name in ("hatena.export.txt", "wordpress.xml", "zenn-article.md"):
            z.write(EXPORTS / name, name)
        for member in sorted((EXPORTS / "medium").rglob("*.html")):
            z.write(member, str(member.relative_to(EXPORTS)))
    return path


def engine_dump(folder: Path, data: str, *flags: str) -> subprocess.Popen:
    """`python -m finetune prepare --dump` on `data`, run in `folder` (where the zip is, so that its
    sources are named inside it, as the page names them), with the form's block size, held-out share
    and seed; started now, read when done."""
    out = "engine" + "".join(flags).replace("--", "-") + ".jsonl"
    command = [sys.executable, "-m", "finetune", "prepare", "--model", str(ROOT / "assets" / "tiny-japanese-gpt2"),
               "--data", data, "--block-size", "128", "--heldout", "0.1", "--seed", "42", *flags, "--dump", out]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(command, cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True)
    process.dump = folder / out
    return process


def dumped(process: subprocess.Popen) -> bytes:
    _, errors = process.communicate(timeout=120)
    assert process.returncode == 0, errors
    return process.dump.read_bytes()


def downloaded(page, name: str, to: Path) -> bytes:
    """The documents file the page offers, once it is the one named `name`, downloaded by the browser."""
    link = page.locator(f'#dump-file a[download="{name}"]')
    link.wait_for(timeout=60_000)
    with page.expect_download() as download:
        link.click()
    download.value.save_as(to)
    return to.read_bytes()


def test_a_blog_export_zip_and_its_documents_download(studio, browser, tmp_path):
    blog = blog_export_zip(tmp_path / "blog.zip")
    plain, drafts = engine_dump(tmp_path, "blog.zip"), engine_dump(tmp_path, "blog.zip", "--include-drafts", "--titles")
    page = browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page.set_default_timeout(60_000)
    page.goto(studio)
    open_tab(page, "学習")
    assert page.locator("#dump-file a").count() == 0        # nothing offered before a check
    page.locator("#files input[type=file]").set_input_files(str(blog))   # checked on upload

    # The summary says, per file, what was used and what was left out (drafts, comments) and why.
    summary = page.locator("#data-summary")
    summary.filter(has_text="ブログの記事").wait_for(timeout=60_000)
    lines = summary.inner_text()
    assert "blog.zip/hatena.export.txt: はてなブログ / Movable Type・記事 2 件" in lines
    assert "使わなかったもの：読者のコメント 1 件、下書き・非公開の記事 1 件、トラックバック・ピンバック 1 件" in lines
    assert "blog.zip/medium/posts/draft_冬の計画-9a8b7c6d5e4f.html: 公開済みの記事はありません" in lines
    assert "「下書き・非公開の記事も使う」にチェックすると使えます" in lines
    screenshot(page, "9-blog-export")
    assert downloaded(page, "blog-documents.jsonl", tmp_path / "page.jsonl") == dumped(plain)

    # Drafts and titles: the summary, the command and the file follow (the earlier file is not offered).
    page.locator("#include-drafts input").check()
    page.locator("#titles input").check()
    page.wait_for_function("() => document.querySelector('#cli-command')?.textContent.includes('--include-drafts --titles')")
    summary.filter(has_text="draft_冬の計画-9a8b7c6d5e4f.html: Medium・記事 1 件").wait_for()
    assert downloaded(page, "blog-documents-drafts-titles.jsonl", tmp_path / "drafts.jsonl") == dumped(drafts)
    page.close()


# ---------------------------------------------------------------------------------------------
# After a restart: an interrupted run resumed, then pushed to the (loopback) Hub

PUSH_TOKEN = "local-user-token"


@pytest.fixture(scope="module")
def online_studio(tiny_model, tmp_path_factory):
    """`python app.py` for its one local user, online against the loopback Hub stub, started where an
    earlier app was stopped in the middle of a run: that run (conftest.crashed_run: 8 steps planned,
    checkpoint-4 written, gone at step 6) is in its runs folder. Yields (url, hub stub, the run)."""
    from conftest import crashed_run
    home = tmp_path_factory.mktemp("online-studio")
    run = crashed_run(tiny_model, UNSEEN, home / "studio" / "runs" / "run-interrupted")
    with HubStub() as hub:
        hub.add_user(PUSH_TOKEN, "local-user")
        serve_model_repos(hub)  # the Hub answers, so the default base is rinna's (the stub's rinna-like copy)
        port = free_port()
        env = {k: v for k, v in os.environ.items()
               if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "PORT", "HF_TOKEN")}
        env |= {"HF_ENDPOINT": hub.url, "HF_HOME": str(home / "hf-home"), "GRADIO_SERVER_PORT": str(port),
                "GRADIO_ANALYTICS_ENABLED": "False", "STUDIO_HOME": str(home / "studio")}
        server = start_app(env, ARTIFACTS / "online-studio.log")
        try:
            wait_until_serving(f"http://127.0.0.1:{port}/", server)
            APPS["online studio"] = server
            yield f"http://127.0.0.1:{port}/", hub, run
        finally:
            server.terminate()
            server.wait(timeout=30)


def test_an_interrupted_run_is_resumed_then_pushed(online_studio, browser):
    url, hub, run = online_studio
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(60_000)
    page.goto(url)

    # The training tab offers the interrupted run, with where it stopped and where it resumes from.
    open_tab(page, "学習")
    page.locator("#resume").wait_for(state="visible")   # in the box of interrupted runs, hidden when none
    offered = page.locator("#interrupted-run input").input_value()
    assert "run-interrupted" in offered and "ステップ 6/8" in offered and "checkpoint-4" in offered
    screenshot(page, "7-interrupted-run")
    page.locator("#resume").click()
    job_state(page, "done")
    assert "after 8 steps" in page.locator("#log textarea").input_value()
    page.locator("#resume").wait_for(state="hidden")   # nothing left to resume: the box is gone
    # Continued from checkpoint-4 in the same folder, not started over.
    events = [json.loads(line) for line in (run / "progress.jsonl").read_text(encoding="utf-8").splitlines()]
    kinds = [e["event"] for e in events]
    after = [e["step"] for e in events[kinds.index("resume"):] if e["event"] == "step"]
    assert kinds.count("start") == kinds.count("resume") == 1 and 4 < after[0] <= 6 and after[-1] == 8

    # The share tab pushes it with the token typed in, to the loopback Hub.
    open_tab(page, "共有")
    page.locator("#hub-state").filter(has_text="Hub に接続できます").wait_for()
    assert "run-interrupted" in page.locator("#share-run input").input_value()
    # No token yet (no HF_TOKEN, a fresh HF_HOME). The note is waited for before typing: the tab's
    # own note, still on its way, would otherwise swallow the note for the typed token (one call
    # of `token_note` at a time, a trigger meanwhile dropped), seen after the journey on a busy machine.
    page.locator("#push-token").filter(has_text="トークンがありません").wait_for()
    page.locator("#token input").fill(PUSH_TOKEN)
    page.locator("#push-token").filter(has_text="入力したトークン").wait_for()
    page.locator("#repo textarea, #repo input").first.fill("resumed-model")
    page.locator("#push").click()
    page.locator("#pushed").filter(has_text="local-user/resumed-model").wait_for()
    pushed = hub.files["local-user/resumed-model"]
    assert pushed["model.safetensors"] == (run / "model.safetensors").read_bytes()
    assert not any(PUSH_TOKEN.encode() in data for data in pushed.values())
    screenshot(page, "8-pushed")
    page.close()


# ---------------------------------------------------------------------------------------------
# Two strangers on one Space

@pytest.fixture(scope="module")
def space_studio(tiny_model, tmp_path_factory):
    """`python app.py` with what a Space sets, and the owner's HF_TOKEN; yields (url, hub stub)."""
    with HubStub() as hub:
        hub.add_user(OWNER_TOKEN, "space-owner")
        serve_model_repos(hub)  # the Hub is reachable, so the studio's default base is rinna's (here rinna-like)
        port, openid = free_port(), OpenIdProvider()
        env = space_env(port, tmp_path_factory.mktemp("space-browser"), hub.url, openid.url)
        server = start_app(env, ARTIFACTS / "space-studio.log")
        try:
            wait_until_serving(f"http://127.0.0.1:{port}/", server)
            APPS["space studio"] = server
            yield f"http://127.0.0.1:{port}/", hub
        finally:
            server.terminate()
            server.wait(timeout=30)
            openid.server.shutdown()


def options_of(page, elem_id: str) -> list[str]:
    """The choices a dropdown offers (opened, read, closed again)."""
    page.locator(f"#{elem_id} input").click()
    page.locator(f"#{elem_id} [role=option]").first.wait_for()
    labels = [option.get_attribute("aria-label") for option in page.locator(f"#{elem_id} [role=option]").all()]
    page.keyboard.press("Escape")
    return labels


def test_two_visitors_on_a_space(space_studio, browser):
    url, hub = space_studio
    served = set(hub.state.repos)  # the model repos the stub serves; a push must add none
    # Two browser contexts: separate storage and cookies, as two strangers' browsers.
    a, b = (browser.new_context(viewport={"width": 1280, "height": 900}).new_page() for _ in range(2))
    for page in (a, b):
        page.set_default_timeout(60_000)
        page.goto(url)
        page.locator("#owner-note").filter(has_text="このブラウザ").wait_for()   # each: its own runs only

    # A trains.
    open_tab(a, "学習")
    a.locator("#pasted textarea").fill(UNSEEN.read_text(encoding="utf-8"))
    set_number(a, "block-size", 64)
    set_number(a, "learning-rate", 0.001)
    set_number(a, "max-steps", 15)
    a.wait_for_function("() => document.querySelector('#cli-command')?.textContent.includes('--max-steps 15')")
    assert "my-data/" in a.locator("#cli-command").inner_text()
    a.locator("#start").click()
    job_state(a, "running", timeout=3 * TRAINING)

    # B sees no job and cancels: A's run goes on to the end.
    open_tab(b, "学習")
    b.locator('#progress .job.idle').wait_for()
    b.locator("#cancel").click()
    b.wait_for_timeout(2_000)
    assert b.locator('#progress .job.idle').count() == 1
    job_state(a, "done", timeout=3 * TRAINING)
    assert "after 15 steps" in a.locator("#log textarea").input_value()  # ran to its end
    assert "キャンセル" not in a.locator("#result").inner_text()
    screenshot(a, "6-space-visitor-a")

    # B's page, reloaded, lists none of A's runs anywhere.
    b.reload()
    b.locator("#owner-note").filter(has_text="このブラウザ").wait_for()
    open_tab(b, "試す")
    assert not any("学習済み" in label for label in options_of(b, "play-model"))
    open_tab(b, "共有")
    b.locator("#push-token").filter(has_text="トークンがありません").wait_for()
    assert b.locator("#share-run [role=option]").count() == 0
    b.locator("#share-run input").click()
    b.wait_for_timeout(1_000)
    assert b.locator("#share-run [role=option]").count() == 0
    screenshot(b, "6-space-visitor-b")

    # A's anonymous push with no token: a clear refusal; the owner's HF_TOKEN is never used.
    open_tab(a, "共有")
    a.locator("#login").filter(has_text="Sign in with Hugging Face").wait_for()   # a Space: the login button
    assert any("学習済み" in label for label in options_of(a, "share-run"))
    a.locator("#push-token").filter(has_text="サーバーのトークンは使いません").wait_for()
    a.locator("#repo textarea, #repo input").first.fill("my-model")
    a.locator("#push").click()
    a.locator(".toast-body").filter(has_text="サーバーのトークンは使いません").first.wait_for()
    assert set(hub.state.repos) == served and ("GET", "/api/whoami-v2") not in hub.state.requests
    for page in (a, b):
        page.context.close()
