"""`python app.py` started as a Hugging Face Space starts it: the variables a Space sets (SYSTEM,
SPACE_ID, the OAUTH_* of `hf_oauth: true`, SPACE_HOST, and HF_TOKEN as an owner's secret), the
loopback Hub stub standing in for huggingface.co, and gradio_client callers standing in for
strangers. Checked: the page and its login button, real OAuth routes, a push with the visitor's
OAuth token (a signed session cookie, as the login leaves it), and that one API session can
neither read, zip, push, generate with nor cancel another's run.
"""
import json
import shutil
import time
from pathlib import Path

import pytest

from conftest import UNSEEN
from hub_stub import HubStub
from space_env import (OWNER_TOKEN, VISITOR_TOKEN, OpenIdProvider, free_port, signed_in_cookie, space_env, start_app,
                       wait_until_serving)


@pytest.fixture(scope="module")
def hub():
    with HubStub() as stub:
        stub.add_user(OWNER_TOKEN, "space-owner")
        stub.add_user(VISITOR_TOKEN, "visitor")
        yield stub


@pytest.fixture(scope="module")
def space(hub, tmp_path_factory, tiny_model):
    """`python app.py` as a Space; yields (url, studio home)."""
    home = tmp_path_factory.mktemp("space")
    port, openid = free_port(), OpenIdProvider()
    server = start_app(space_env(port, home, hub.url, openid.url), home / "app.log")
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_until_serving(url, server)
        yield url, home / "studio"
    finally:
        server.terminate()
        server.wait(timeout=30)
        openid.server.shutdown()


def client(url: str, **headers):
    from gradio_client import Client
    return Client(url, verbose=False, headers=headers or None)


def refused(call) -> str:
    with pytest.raises(Exception) as err:
        call()
    return str(err.value)


def test_the_page_has_the_login_button_and_real_oauth_routes(space):
    import httpx
    url, _ = space
    config = httpx.get(url + "config", timeout=30).json()
    login = [c for c in config["components"] if c.get("props", {}).get("elem_id") == "login"]
    assert login and login[0]["props"]["value"] == "Sign in with Hugging Face"
    assert {"start", "cancel", "share-run", "push", "token", "push-token", "delete-run"} <= \
        {c.get("props", {}).get("elem_id") for c in config["components"]}
    # Hugging Face's login, not Gradio's local stand-in: off to the provider, with this Space's client id.
    answer = httpx.get(url + "login/huggingface", timeout=30, follow_redirects=False)
    assert answer.status_code in (302, 307)
    assert "/oauth/authorize?" in answer.headers["location"] and "client_id=test-oauth-client" in answer.headers["location"]


def test_a_signed_in_visitor_pushes_with_their_own_oauth_token(space, hub, tiny_model):
    from finetune.workspace import owner_folder, server_secret
    url, home = space
    # A finished run of the signed-in visitor (the embedded model's files as its trained weights).
    run = home / "runs" / owner_folder(server_secret(home), "user:visitor", signed_in=True) / "run-visitor"
    shutil.copytree(tiny_model, run)
    (run / "metrics.json").write_text(json.dumps({"method": "full", "base_model": tiny_model,
                                                  "heldout_perplexity_before": 40.0, "heldout_perplexity_after": 20.0,
                                                  "steps": 1, "seconds": 1}), encoding="utf-8")
    visitor = client(url, Cookie=f"session={signed_in_cookie('visitor', VISITOR_TOKEN)}")
    shown = visitor.predict(str(run), "my-model", True, "", api_name="/push_to_hub")
    assert "visitor/my-model" in shown
    assert set(hub.state.repos) == {"visitor/my-model"} and "model.safetensors" in hub.files["visitor/my-model"]
    # The same run named by an anonymous caller, with the owner's HF_TOKEN on the server: not theirs.
    assert "見つかりません" in refused(lambda: client(url).predict(str(run), "x", True, "", api_name="/push_to_hub"))
    assert set(hub.state.repos) == {"visitor/my-model"}


def test_api_sessions_are_private_from_each_other(space, hub, tiny_model):
    from gradio_client import handle_file
    url, home = space
    a, b = client(url), client(url)
    started = a.predict(files=[handle_file(str(UNSEEN))], base_model=tiny_model, max_steps=20, block_size=64,
                        learning_rate=1e-3, device="cpu", api_name="/start_training")
    assert started["state"] == "running"
    # B sees nothing of A's job, and B's cancel does not stop it.
    assert b.predict(api_name="/training_status")["state"] == "idle"
    assert b.predict(api_name="/cancel_training")["state"] == "idle"
    # B's own start waits in line behind A's, and B can leave the line.
    queued = b.predict(pasted="短い文章です。" * 200, base_model=tiny_model, max_steps=5, block_size=64,
                       api_name="/start_training")
    assert (queued["state"], queued["position"]) == ("queued", 1) and queued["out"] == ""
    assert b.predict(api_name="/cancel_training")["state"] == "idle"
    status = a.predict(api_name="/training_status")
    while status["state"] in ("running", "stopping"):
        time.sleep(1)
        status = a.predict(api_name="/training_status")
    assert status["state"] == "done" and status["metrics"]["steps"] == 20       # ran to the end
    assert status["command"].startswith("python -m finetune train --model assets/tiny-japanese-gpt2 --data my-data/")
    assert str(Path(status["out"]).parent) not in status["command"]            # no server paths shown
    run = status["out"]
    # Everything B could name A's run with answers as for a run that does not exist.
    missing = str(Path(run).with_name("run-that-never-was"))
    expected = refused(lambda: b.predict(missing, False, api_name="/export_zip")).replace("run-that-never-was", "")
    for name, call in {
        "zip": lambda: b.predict(run, False, api_name="/export_zip"),
        "push": lambda: b.predict(run, "stolen", True, "", api_name="/push_to_hub"),
        "generate": lambda: b.predict("「科学」とは", run, api_name="/generate"),
        "tokenize": lambda: b.predict("こんにちは", run, api_name="/tokenize"),
        "delete": lambda: b.predict(run, api_name="/delete_run"),
        "resume": lambda: b.predict(run, api_name="/resume_training"),
    }.items():
        assert refused(call).replace(Path(run).name, "") == expected, name
    assert hub.state.repos.keys() <= {"visitor/my-model"}                       # nothing pushed for B
    # A, meanwhile: its zip, and an anonymous push refused without ever using the server's HF_TOKEN.
    assert a.predict(run, False, api_name="/export_zip").endswith(".zip")
    message = refused(lambda: a.predict(run, "my-model", True, "", api_name="/push_to_hub"))
    assert "サーバーのトークンは使いません" in message
    assert hub.state.repos.keys() <= {"visitor/my-model"}
    # A key from /new_session makes any client the same owner; without it, another client is not.
    from finetune.workspace import owner_folder, server_secret
    key = a.predict(api_name="/new_session")
    keyed = home / "runs" / owner_folder(server_secret(home), "key:" + key, signed_in=False) / "run-keyed"
    shutil.copytree(run, keyed)
    assert client(url).predict(str(keyed), False, key, api_name="/export_zip").endswith("run-keyed.zip")
    assert "見つかりません" in refused(lambda: client(url).predict(str(keyed), False, api_name="/export_zip"))
