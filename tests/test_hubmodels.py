"""Hub models for the studio (finetune/hubmodels.py) against the loopback Hub (tests/hub_stub.py): the
rinna default when the Hub is reachable, loaded through the engine's own loading; the embedded
default offline, with the reason; models over the size limit and gated or private repos refused
with nothing downloaded; the background prefetch filling the cache so that the first load downloads
nothing more.

huggingface_hub reads HF_HUB_OFFLINE, HF_ENDPOINT and HF_HOME once, at import. Tests that only ask
the Hub about a repo (no transformers loading) run in this process with those constants patched
(`online`); tests that load a model through transformers run in a fresh Python process whose
environment points at the stub (`client`), which is what the studio's own process would see.
"""
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from finetune import hubmodels
from finetune.cache import ModelCache
from finetune.errors import ModelNotAvailable
from finetune.hubmodels import (CACHED_OFFLINE, GB, HUB_REACHABLE, HUB_UNREACHABLE, MAX_MODEL_ENV, OFFLINE_MODE,
                                HubModelRefused, ModelGated, ModelNotFound, ModelTooLarge, check_download,
                                default_base, download_plan, planned_files)
from finetune.models import EMBEDDED_MODEL, ModelPolicy
from hub_stub import GATED, HUGE, RINNA, HubStub, rinna_like_files, serve_model_repos

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
ALICE = "hf_TESTaliceHasGatedAccess0123456789"   # granted the gated repo, reads her private one
BOB = "hf_TESTbobHasNoGrants0123456789abcdef"
PRIVATE = "alice/private-gpt2"
RINNA_FILES = {"config.json", "model.safetensors", "spiece.model", "tokenizer_config.json", "special_tokens_map.json"}
POLICY = ModelPolicy((str(ROOT / "assets"),))


@pytest.fixture
def hub():
    with HubStub() as stub:
        stub.add_user(ALICE, "alice")
        stub.add_user(BOB, "bob")
        serve_model_repos(stub, gated_readers=["alice"])
        stub.add_model(PRIVATE, rinna_like_files()[0], private=True)
        yield stub


@pytest.fixture
def online(hub, monkeypatch, tmp_path):
    """This process talks to the stub: huggingface_hub's constants (read at import) and the
    environment point at it, offline mode is off, the cache is empty and no token is found."""
    import huggingface_hub.constants as constants
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN", MAX_MODEL_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", hub.url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-home" / "hub"))
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "hf-home" / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "hf-home" / "stored_tokens"))
    hubmodels.forget()
    yield hub
    hubmodels.forget()


def file_requests(hub, repo_id, methods=("GET", "HEAD")) -> list:
    return [(m, p) for m, p in hub.resolves(repo_id) if m in methods]


# ---------------------------------------------------------------------------------------------
# The default base

def test_default_is_rinna_when_the_hub_answers(online):
    assert default_base() == hubmodels.DefaultBase(RINNA, HUB_REACHABLE)
    assert default_base().on_hub


def test_default_is_the_embedded_model_offline_with_the_reason(online, monkeypatch):
    import huggingface_hub.constants as constants
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert default_base() == hubmodels.DefaultBase(EMBEDDED_MODEL, OFFLINE_MODE)
    assert check_download(RINNA) is None   # nothing can be downloaded, so nothing to check
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", unused_local_url())
    hubmodels.forget()
    assert default_base() == hubmodels.DefaultBase(EMBEDDED_MODEL, HUB_UNREACHABLE)
    assert not default_base().on_hub
    assert not online.state.requests


def test_reachability_is_remembered(online, monkeypatch):
    assert hubmodels.hub_status() == HUB_REACHABLE
    monkeypatch.setattr(hubmodels, "can_connect", lambda *a: pytest.fail("asked again"))
    assert hubmodels.hub_status() == HUB_REACHABLE
    hubmodels.forget()
    monkeypatch.setattr(hubmodels, "can_connect", lambda *a: False)
    assert hubmodels.hub_status() == HUB_UNREACHABLE


def test_offline_with_the_model_in_the_cache_keeps_it_as_default(online, monkeypatch):
    plan = hubmodels.fetch(RINNA)
    assert set(plan.files) == RINNA_FILES and plan.cached == frozenset(RINNA_FILES)
    monkeypatch.setattr(hubmodels, "can_connect", lambda *a: False)
    hubmodels.forget()
    assert default_base() == hubmodels.DefaultBase(RINNA, CACHED_OFFLINE)


def unused_local_url() -> str:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# ---------------------------------------------------------------------------------------------
# What loading downloads, and refusals

def test_plan_follows_the_weights_transformers_picks():
    def sizes(*names):
        return dict.fromkeys(("config.json", "tokenizer_config.json", "README.md", *names), 10)
    shards = [f"model-0000{i}-of-00003.safetensors" for i in (1, 2, 3)]
    assert set(planned_files(sizes("model.safetensors", "pytorch_model.bin", "tf_model.h5"))) == {
        "config.json", "tokenizer_config.json", "model.safetensors"}
    assert set(planned_files(sizes("model.safetensors.index.json", *shards, "consolidated.safetensors",
                                   "pytorch_model.bin"), ("model",))) == {
        "config.json", "model.safetensors.index.json", *shards}
    assert set(planned_files(sizes("pytorch_model.bin", "generation_config.json", "flax_model.msgpack"),
                             ("model",))) == {"config.json", "generation_config.json", "pytorch_model.bin"}
    assert set(planned_files(sizes("pytorch_model.bin.index.json", "pytorch_model-00001-of-00002.bin",
                                   "pytorch_model-00002-of-00002.bin", "training_args.bin"), ("model",))) == {
        "config.json", "pytorch_model.bin.index.json", "pytorch_model-00001-of-00002.bin",
        "pytorch_model-00002-of-00002.bin"}
    assert set(planned_files(sizes("model.safetensors", "spiece.model", "tokenizer.json",
                                   "additional_chat_templates/tool.jinja"), ("tokenizer",))) == {
        "config.json", "tokenizer_config.json", "spiece.model", "tokenizer.json", "additional_chat_templates/tool.jinja"}
    with pytest.raises(HubModelRefused, match="no weights"):
        planned_files(sizes("tf_model.h5", "model.gguf"), repo_id="x/y")
    with pytest.raises(HubModelRefused, match="LoRA adapter") as err:
        planned_files(sizes("adapter_config.json", "adapter_model.safetensors"), repo_id="x/y")
    assert err.value.message_ja and isinstance(err.value, ModelNotAvailable)
    with pytest.raises(ValueError, match="parts"):
        planned_files(sizes("model.safetensors"), ("weights",))


def test_rinna_plan_reads_the_hub_and_downloads_nothing(online):
    plan = download_plan(RINNA)
    assert set(plan.files) == RINNA_FILES and not plan.cached
    served = rinna_like_files()[0]
    assert plan.files == {name: len(served[name]) for name in RINNA_FILES}
    assert plan.total_bytes == plan.download_bytes == sum(map(len, (served[n] for n in RINNA_FILES)))
    assert plan.revision == online.state.repos[RINNA]["sha"]
    assert ("GET", f"/api/models/{RINNA}") in online.state.requests
    assert not file_requests(online, RINNA) and not online.state.unexpected


def test_a_model_over_the_limit_is_refused_before_any_download(online):
    with pytest.raises(ModelTooLarge) as err:
        check_download(HUGE)
    assert err.value.size_bytes == 15 * 9_900_000_000 + sum(
        len(v) for k, v in online.files[HUGE].items() if k != "pytorch_model.bin.index.json" and k != "README.md")
    assert err.value.limit_bytes == 2 * GB
    assert "149 GB" in str(err.value) and "2.00 GB" in str(err.value) and MAX_MODEL_ENV in str(err.value)
    assert "149 GB" in err.value.message_ja and "2.00 GB" in err.value.message_ja
    cache = ModelCache(policy=POLICY, device="cpu")
    with pytest.raises(ModelTooLarge):
        cache.model(HUGE)
    with pytest.raises(ModelTooLarge):
        POLICY.check_download(HUGE, token=False)
    assert check_download(HUGE, parts=("tokenizer",)).total_bytes < 10**6   # its tokenizer alone is small
    assert not file_requests(online, HUGE) and not online.downloads() and not online.state.unexpected


def test_the_limit_comes_from_the_environment_or_the_policy(online, monkeypatch):
    import torch
    if not torch.cuda.is_available():
        assert hubmodels.max_model_bytes() == 2 * GB
    monkeypatch.setenv(MAX_MODEL_ENV, "0.01")   # 10 MB: the rinna stand-in's 19 MB of weights are too much
    with pytest.raises(ModelTooLarge, match="0.01 GB"):
        check_download(RINNA)
    monkeypatch.setenv(MAX_MODEL_ENV, "lots")
    with pytest.raises(ValueError, match=MAX_MODEL_ENV):
        check_download(RINNA)
    monkeypatch.delenv(MAX_MODEL_ENV)
    assert ModelPolicy(POLICY.roots, max_model_gb=1.0).check_download(RINNA).total_bytes < GB
    with pytest.raises(ModelTooLarge):
        ModelPolicy(POLICY.roots, max_model_gb=0.001).check_download(RINNA)
    with pytest.raises(ValueError, match="max_model_gb"):
        ModelPolicy(POLICY.roots, max_model_gb=0)
    assert not online.downloads()


@pytest.mark.parametrize("token, refused", [(False, ModelGated), (BOB, ModelGated), (ALICE, None)])
def test_a_gated_repo_needs_a_token_that_was_granted(online, token, refused):
    if refused is None:
        assert set(check_download(GATED, token).files) == RINNA_FILES
    else:
        with pytest.raises(refused) as err:
            ModelCache(policy=POLICY, device="cpu").model(GATED, token=token)
        assert "gated" in str(err.value) and "gated" in err.value.message_ja
        assert ("anonymous" in str(err.value)) == (token is False)
    assert not file_requests(online, GATED) and not online.downloads()


def test_a_private_repo_is_refused_to_those_who_cannot_read_it(online):
    for token in (False, BOB):
        with pytest.raises(ModelNotFound, match="private"):
            check_download(PRIVATE, token)
    with pytest.raises(ModelNotFound, match="not found"):
        check_download("nobody/no-such-model", False)
    assert set(check_download(PRIVATE, ALICE).files) == RINNA_FILES
    assert not online.downloads()


def test_access_is_checked_per_token_on_every_use(online):
    """Alice's grant, remembered, does not let Bob in; a model already checked is checked again."""
    assert POLICY.check_download(GATED, ALICE)
    for _ in range(2):
        with pytest.raises(ModelGated):
            POLICY.check_download(GATED, BOB)
    assert POLICY.check_download(GATED, ALICE)
    infos = [p for m, p in online.state.requests if p == f"/api/models/{GATED}"]
    assert len(infos) == 3   # Alice's answer reused; Bob's refusal is never remembered


def test_the_hub_failing_to_answer_refuses_the_download(online, monkeypatch):
    import huggingface_hub.constants as constants
    monkeypatch.setattr(constants, "ENDPOINT", unused_local_url())   # TCP check remembered as fine, API down
    hubmodels.forget()
    monkeypatch.setattr(hubmodels, "can_connect", lambda *a: True)
    with pytest.raises(HubModelRefused, match="cannot read the size"):
        check_download(RINNA)


def test_folders_pass_the_download_check(online, tiny_model):
    assert POLICY.check_download(tiny_model) is None
    assert not online.state.requests


# ---------------------------------------------------------------------------------------------
# Background prefetch

def test_a_failed_prefetch_is_logged_and_kept_in_its_future(online, caplog):
    caplog.set_level(logging.WARNING, logger="finetune.hubmodels")
    future = hubmodels.prefetch(HUGE)
    assert isinstance(future.exception(timeout=60), ModelTooLarge)
    assert any("prefetching" in r.getMessage() and HUGE in r.getMessage() for r in caplog.records)
    assert not online.downloads()


def test_prefetch_offline_does_nothing(online, monkeypatch):
    import huggingface_hub.constants as constants
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert hubmodels.prefetch().result(timeout=60) is None
    assert not online.state.requests


# ---------------------------------------------------------------------------------------------
# Loading through the engine, in a process of its own that sees the stub as the Hub

def client_env(hub, tmp_path) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN", MAX_MODEL_ENV)}
    return {**env, "HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf-home"),
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS)])}


def client(name: str, hub, tmp_path, **kw) -> subprocess.Popen:
    """Run `name` (a function of this module) in a fresh Python whose environment points at the stub."""
    return subprocess.Popen([sys.executable, "-c", f"import test_hubmodels as t; t.{name}()"], cwd=ROOT,
                            env=client_env(hub, tmp_path), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def load_rinna_default():
    """Client: the default base, its plan, then loading it the CLI's way (finetune.models), compared
    with the embedded model it was built from."""
    import torch
    from finetune.models import load_model, load_tokenizer_for, resolve_source
    from finetune.tokens import encode_prompt
    choice = default_base()
    plan = check_download(choice.model)
    source = resolve_source(choice.model)
    tokenizer, parity = load_tokenizer_for(source)
    model = load_model(source).eval()
    embedded = load_model(resolve_source(EMBEDDED_MODEL)).eval()
    ids = torch.tensor([encode_prompt(tokenizer, "これはペンです。ABC 鬱蒼とした")])
    with torch.no_grad():
        same = torch.equal(model(ids).logits, embedded(ids).logits)
    print(json.dumps({"model": choice.model, "reason": choice.reason, "plan": plan.files, "parity": parity.status,
                      "ids": ids[0].tolist(), "same_logits": same, "was_cached": source.local_files_only}))


def test_rinna_default_loads_from_the_hub_through_the_engine(hub, tmp_path):
    process = client("load_rinna_default", hub, tmp_path)
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err
    result = last_json(out)
    assert result["model"] == RINNA and result["reason"] == HUB_REACHABLE and not result["was_cached"]
    assert result["same_logits"] and result["parity"] in ("ok", "repaired")
    import sentencepiece
    spm = sentencepiece.SentencePieceProcessor(model_file=str(ROOT / "assets/tiny-japanese-gpt2/spiece.model"))
    assert result["ids"] == spm.encode("これはペンです。ABC 鬱蒼とした".lower())
    # The plan is exactly what loading downloaded: safetensors, never the .bin, .h5 or picture.
    assert sorted(hub.downloads(RINNA)) == sorted(result["plan"]) and set(result["plan"]) == RINNA_FILES
    served = hub.files[RINNA]
    assert sum(len(served[name]) for name in hub.downloads(RINNA)) == sum(result["plan"].values())
    assert not hub.state.unexpected


def prefetch_then_load():
    """Client: the app starts and prefetches (waiting for it), says so, waits for the test's go,
    then a visitor's first use loads the model through the studio's cache and policy."""
    future = hubmodels.prefetch()
    plan = future.result(timeout=300)
    print(json.dumps({"prefetched": sorted(plan.files)}), flush=True)
    sys.stdin.readline()
    cache = ModelCache(policy=POLICY, device="cpu")
    model, tokenizer = cache.model(RINNA, token=False)
    print(json.dumps({"loaded": type(model).__name__, "tokens": len(tokenizer("灯台の明かり").input_ids)}))


def test_prefetch_fills_the_cache_so_the_first_load_downloads_nothing(hub, tmp_path):
    process = client("prefetch_then_load", hub, tmp_path)
    first = json.loads(process.stdout.readline() or "{}")
    assert set(first.get("prefetched", ())) == RINNA_FILES, process.stderr.read() if not first else first
    assert sorted(hub.downloads(RINNA)) == sorted(RINNA_FILES)
    before = len(hub.state.requests)
    out, err = process.communicate("go\n", timeout=600)
    assert process.returncode == 0, err
    assert last_json(out)["loaded"] == "GPT2LMHeadModel"
    later = [(m, p) for m, p in hub.state.requests[before:] if "/resolve/" in p]
    assert not [r for r in later if r[0] == "GET"], later   # nothing downloaded again
    # transformers still HEADs an optional adapter_config.json even when loading from the cache.
    assert all(p.endswith("/adapter_config.json") for _, p in later), later
    assert sorted(hub.downloads(RINNA)) == sorted(RINNA_FILES) and not hub.state.unexpected


def test_a_tokenizer_then_the_model_loads_the_weights_too(hub, tmp_path):
    """The tokenizer caches config.json alone; the model's load must still fetch its weights."""
    process = client("tokenizer_then_model", hub, tmp_path)
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err
    assert last_json(out) == {"loaded": "GPT2LMHeadModel"}
    assert sorted(hub.downloads(RINNA)) == sorted(RINNA_FILES)


def tokenizer_then_model():
    cache = ModelCache(policy=POLICY, device="cpu")
    cache.tokenizer(RINNA, token=False)
    model, _ = cache.model(RINNA, token=False)
    print(json.dumps({"loaded": type(model).__name__}))
