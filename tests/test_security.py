"""Hostile or odd input to a shared studio: model names, sampling controls, other visitors' runs,
whose token a push uses."""
import os
import shutil
import tempfile
from pathlib import Path

import pytest

# As the rest of the suite sets them before the studio is imported (tests/test_app.py): the extra
# root holds the work folder, so the uploads are kept out by the exclusion, not by the roots.
os.environ.setdefault("STUDIO_HOME", tempfile.mkdtemp(prefix="studio-test-"))
os.environ.setdefault("STUDIO_MODEL_ROOTS", tempfile.gettempdir())

from finetune.errors import ModelNotAvailable
from finetune.generate import GenerationSettings
from finetune.models import EMBEDDED_MODEL, ModelPolicy


@pytest.fixture
def policy(tmp_path):
    return ModelPolicy((str(tmp_path / "work"), str(EMBEDDED_MODEL).rsplit("/", 1)[0]))


@pytest.mark.parametrize("name", [
    "/etc", "/etc/passwd", "~/.ssh", "../", "../../etc", "assets/../../etc",
    "https://example.com/model", "file:///etc/passwd", "http://127.0.0.1:8000/x",
    "owner/name/../../x", "a\x00b", "owner/na me",
])
def test_policy_refuses_paths_outside_urls_and_odd_names(policy, name):
    with pytest.raises(ModelNotAvailable):
        policy.check(name)


def test_policy_refuses_a_symlink_that_leads_outside(policy, tmp_path):
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "sneaky").symlink_to("/etc")
    with pytest.raises(ModelNotAvailable, match="app's own folders"):
        policy.check(str(tmp_path / "work" / "sneaky"))


def test_policy_accepts_hub_ids_and_folders_inside(policy, tmp_path):
    (tmp_path / "work" / "runs" / "r1").mkdir(parents=True)
    policy.check("rinna/japanese-gpt2-xsmall")
    policy.check("gpt2")
    policy.check(EMBEDDED_MODEL)
    policy.check(str(tmp_path / "work" / "runs" / "r1"))


# ---------------------------------------------------------------------------------------------
# The studio's own callbacks, called as Gradio calls them (the local user: every folder the policy
# allows is theirs). Each must refuse what the policy refuses, with the policy's reason.

OUTSIDE = "app's own folders"
URL = "URLs are not accepted"
LINK_OUT = "runs/link-to-etc"   # made by the `link_out` fixture: a folder in the runs leading to /etc
ACTIONS = ("tokenize", "generate", "compare, base side", "compare, tuned side", "train on it", "zip", "push")


def studio_actions(name: str) -> dict:
    """Every studio action that takes a model or run name from the page or an API caller."""
    from studio import callbacks as studio
    return {
        "tokenize": lambda: studio.tokenize("こんにちは", name),
        "generate": lambda: studio.generate("こんにちは", name, "complete", 5),
        "compare, base side": lambda: studio.compare("こんにちは", name, EMBEDDED_MODEL, "complete", 5),
        "compare, tuned side": lambda: studio.compare("こんにちは", EMBEDDED_MODEL, name, "complete", 5),
        "train on it": lambda: studio.start_training(None, "文章です。" * 50, name, "full", 1, 1),
        "zip": lambda: studio.make_zip(name, False),
        "push": lambda: studio.push_to_hub(name, "repo", True, "a-token"),
    }


@pytest.fixture
def link_out():
    from studio import shared
    link = shared.WORK / LINK_OUT
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to("/etc", target_is_directory=True)
    yield str(link)
    link.unlink()


# Relative names climb from the app's folder (the tests' working directory) all the way to / and /etc:
# a fixed "../" would land inside the suite's STUDIO_MODEL_ROOTS (the temp folder) when the checkout
# itself lives there, as a CI clone in /tmp does, and the policy rightly opens what is inside a root.
UP_TO_ROOT = os.path.relpath("/") + "/"                        # "../../" from /work/main
ASSETS_UP_TO_ETC = "assets/" + os.path.relpath("/etc", "assets")  # "assets/../../../etc" from there


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("name, reason", [
    ("/etc", OUTSIDE), ("~/.ssh", OUTSIDE), (UP_TO_ROOT, OUTSIDE), (ASSETS_UP_TO_ETC, OUTSIDE), (LINK_OUT, OUTSIDE),
    ("https://example.com/model", URL), ("file:///etc/passwd", URL), ("http://127.0.0.1:8000/x", URL),
])
def test_the_studio_refuses_places_outside_its_folders_and_urls(name, reason, action, request):
    """As a model (tokens, playground, training base) and in the share tab (zip, push): refused with
    the policy's own reason, in one line, whatever the action."""
    if name == LINK_OUT:
        name = request.getfixturevalue("link_out")
    message = refusal(studio_actions(name)[action])
    assert reason in message and "\n" not in message


@pytest.mark.parametrize("bad", [dict(max_new_tokens=0), dict(max_new_tokens=-5), dict(max_new_tokens=10**9),
                                 dict(temperature=-1), dict(temperature=1e9), dict(top_p=0), dict(top_p=2),
                                 dict(top_k=-1), dict(repetition_penalty=0), dict(repetition_penalty=100)])
def test_sampling_controls_out_of_range_are_refused_not_crashes(bad):
    with pytest.raises(ValueError):
        GenerationSettings(**bad)


def remote_code_folder(folder, marker):
    """A model folder whose config, model and tokenizer all name Python files of their own; each file
    leaves `marker` behind if it is ever imported."""
    import json
    folder.mkdir()
    run_me = f"open({str(marker)!r}, 'w').write('ran')\n"
    (folder / "configuration_evil.py").write_text(
        run_me + "from transformers import PretrainedConfig\n\n"
        "class EvilConfig(PretrainedConfig):\n    model_type = 'evilgpt'\n", encoding="utf-8")
    (folder / "modeling_evil.py").write_text(run_me + "from transformers import GPT2LMHeadModel as EvilModel\n",
                                             encoding="utf-8")
    (folder / "tokenization_evil.py").write_text(
        run_me + "from transformers import PreTrainedTokenizerFast as EvilTokenizer\n", encoding="utf-8")
    (folder / "config.json").write_text(json.dumps({"model_type": "evilgpt", "auto_map": {
        "AutoConfig": "configuration_evil.EvilConfig", "AutoModelForCausalLM": "modeling_evil.EvilModel"}}),
        encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps({"auto_map": {
        "AutoTokenizer": ["tokenization_evil.EvilTokenizer", None]}}), encoding="utf-8")
    return folder


@pytest.mark.parametrize("load", ["model", "tokenizer"])
def test_remote_code_never_runs_even_if_someone_answers_yes(load, tmp_path, monkeypatch):
    """transformers asks "Do you wish to run the custom code? [y/N]" on a terminal unless
    trust_remote_code is given: the engine must pass False, so no prompt and no import."""
    from finetune.models import load_model, load_tokenizer_for, resolve_source
    marker = tmp_path / "ran"
    asked = []
    monkeypatch.setattr("builtins.input", lambda prompt="": asked.append(prompt) or "y")
    source = resolve_source(str(remote_code_folder(tmp_path / "evil", marker)))
    with pytest.raises(ModelNotAvailable):
        load_model(source) if load == "model" else load_tokenizer_for(source)
    assert not marker.exists() and not asked


def model_copy(tiny_model, folder, safetensors=True, pickle=False):
    """The embedded model's config and tokenizer with its weights as safetensors, as a pickle
    (pytorch_model.bin, a torch.save'd state dict: transformers 5.24 has no safe_serialization=False)
    or both."""
    import shutil

    import torch
    from safetensors.torch import load_file
    folder.mkdir(parents=True)
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "spiece.model"):
        shutil.copy(f"{tiny_model}/{name}", folder / name)
    weights = load_file(f"{tiny_model}/model.safetensors")
    if safetensors:
        shutil.copy(f"{tiny_model}/model.safetensors", folder / "model.safetensors")
    if pickle:
        torch.save(weights, folder / "pytorch_model.bin")
    return folder


def test_the_studio_opens_no_pickle_only_model(policy, tmp_path, tiny_model):
    only_bin = model_copy(tiny_model, tmp_path / "work" / "old", safetensors=False, pickle=True)
    policy.check(str(only_bin))  # the place is fine …
    with pytest.raises(ModelNotAvailable, match=r"pickle weights only \(pytorch_model.bin\).*safetensors"):
        policy.check_weights(str(only_bin))  # … the weights are not
    policy.check_weights(str(model_copy(tiny_model, tmp_path / "work" / "both", pickle=True)))
    policy.check_weights(EMBEDDED_MODEL)


def test_a_lora_folder_is_checked_with_its_base(policy, tmp_path, tiny_model):
    import json
    adapter = tmp_path / "work" / "lora"
    adapter.mkdir(parents=True)
    (adapter / "adapter_model.bin").write_bytes(b"\0")
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "/etc"}), encoding="utf-8")
    with pytest.raises(ModelNotAvailable, match="app's own folders"):
        policy.check(str(adapter))  # a base outside the app's folders
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": EMBEDDED_MODEL}),
                                                 encoding="utf-8")
    policy.check(str(adapter))
    with pytest.raises(ModelNotAvailable, match="adapter_model.bin"):
        policy.check_weights(str(adapter))


def test_hub_models_with_pickle_weights_only_are_refused_except_the_default_base(policy, tmp_path, monkeypatch):
    """A Hub model in the local cache (a fake cache here, offline) that holds only pytorch_model.bin."""
    import huggingface_hub.constants

    from finetune.models import DEFAULT_BASE
    for repo in ("someone/old-gpt", DEFAULT_BASE):
        cached = tmp_path / "hub" / f"models--{repo.replace('/', '--')}"
        (cached / "refs").mkdir(parents=True)
        (cached / "refs" / "main").write_text("abc", encoding="utf-8")
        (cached / "snapshots" / "abc").mkdir(parents=True)
        for name in ("config.json", "pytorch_model.bin"):
            (cached / "snapshots" / "abc" / name).write_bytes(b"{}")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(ModelNotAvailable, match="someone/old-gpt has pickle weights only"):
        policy.check_weights("someone/old-gpt")
    policy.check_weights(DEFAULT_BASE)  # trusted: read with weights_only=True if that is all it has


def test_the_command_line_reads_pickle_weights_as_tensors_only(tiny_model, tmp_path):
    """Outside the studio a .bin model still loads, through torch's weights_only unpickler; a pickle
    that would run code is refused, and the code does not run."""
    import os
    import pickle

    import torch

    from finetune.models import load_model, resolve_source
    only_bin = model_copy(tiny_model, tmp_path / "old", safetensors=False, pickle=True)
    loaded = load_model(resolve_source(str(only_bin)))
    expected = load_model(resolve_source(tiny_model))
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), expected.state_dict().values()))

    marker = tmp_path / "ran"

    class RunsCode:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    with open(only_bin / "pytorch_model.bin", "wb") as f:
        pickle.dump({"transformer.wte.weight": RunsCode()}, f)
    with pytest.raises(ModelNotAvailable, match="objects other than tensors"):
        load_model(resolve_source(str(only_bin)))
    assert not marker.exists()


def test_the_studio_cache_and_training_job_check_the_weights(policy, tmp_path, tiny_model, unseen_text):
    from finetune.cache import ModelCache
    from finetune.runner import TrainingJob
    from finetune.train import TrainSettings
    only_bin = str(model_copy(tiny_model, tmp_path / "work" / "old", safetensors=False, pickle=True))
    with pytest.raises(ModelNotAvailable, match="pickle weights only"):
        ModelCache(policy=policy).model(only_bin)
    job = TrainingJob(tmp_path / "work" / "runs", policy=policy)
    with pytest.raises(ModelNotAvailable, match="pickle weights only"):
        job.start(TrainSettings(model=only_bin, data=[str(unseen_text)], max_steps=1))
    assert job.thread is None


def studio_folder(kind: str, name: str) -> Path:
    """A fresh folder in the studio's work folder (runs/ or uploads/), named for the test."""
    from studio import shared
    folder = shared.WORK / kind / f"{name}-{os.getpid()}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.mark.parametrize("action", ACTIONS)
def test_a_model_among_the_uploads_is_refused_by_every_action(action, tiny_model):
    """A loadable model folder in the visitors' uploads (beside the runs, and inside the suite's
    STUDIO_MODEL_ROOTS) is no model to open or share; the same folder among the runs is."""
    upload = studio_folder("uploads", "a-model")
    shutil.copytree(tiny_model, upload)
    try:
        message = refusal(studio_actions(str(upload))[action])
        assert "uploaded files are not model folders" in message
    finally:
        shutil.rmtree(upload)


def test_the_same_model_among_the_runs_opens(tiny_model):
    from studio import callbacks as studio
    run = studio_folder("runs", "a-model")
    shutil.copytree(tiny_model, run)
    try:
        assert studio.tokenize("こんにちは", str(run))["count"] > 0
        assert list(studio.generate("こんにちは", str(run), "complete", 3))[-1][1]["role"] == "assistant"
    finally:
        shutil.rmtree(run)


def test_the_studio_refuses_pickle_only_weights_before_loading_or_queueing(tiny_model, monkeypatch):
    """A pickle-only model in the runs folder (a place the studio may open): the playground refuses it
    before loading any weights, a training start before it joins the line; its tokenizer, which
    holds no weights, may still be looked at."""
    import finetune.cache
    from finetune.runner import JobStatus
    from studio import callbacks as studio, shared
    folder = model_copy(tiny_model, studio_folder("runs", "pickle-only"), safetensors=False, pickle=True)
    loaded, queued = [], []
    real_load = finetune.cache.load_model
    monkeypatch.setattr(finetune.cache, "load_model", lambda source, *a, **k: loaded.append(source.name)
                        or real_load(source, *a, **k))
    monkeypatch.setattr(shared.QUEUE, "submit", lambda ticket: queued.append(ticket) or JobStatus(state="queued"))
    try:
        for action in ("generate", "compare, base side", "compare, tuned side", "train on it"):
            message = refusal(studio_actions(str(folder))[action])
            assert "pickle weights only (pytorch_model.bin)" in message and "safetensors" in message, action
        assert str(folder) not in loaded and queued == []   # (the compare may load its base side)
        assert studio.tokenize("こんにちは", str(folder))["count"] > 0
    finally:
        shutil.rmtree(folder)


@pytest.mark.parametrize("part", ["model", "tokenizer"])
def test_the_studio_never_runs_a_models_own_code(part, tmp_path, tiny_model, monkeypatch):
    """A folder in the runs whose model (config.json) or tokenizer names Python files of its own:
    the playground and the token view refuse it; no file of it is imported, nobody is asked."""
    marker = tmp_path / "ran"
    folder = remote_code_folder(studio_folder("runs", f"own-code-{part}"), marker)
    if part == "model":  # a plain tokenizer, so that loading gets as far as the model
        for name in ("tokenizer.json", "tokenizer_config.json", "spiece.model"):
            shutil.copy(f"{tiny_model}/{name}", folder / name)
    asked = []
    monkeypatch.setattr("builtins.input", lambda prompt="": asked.append(prompt) or "y")
    try:
        action = "generate" if part == "model" else "tokenize"
        message = refusal(studio_actions(str(folder))[action])
        assert ("cannot load model" if part == "model" else "cannot load the tokenizer") in message
        assert not marker.exists() and not asked
    finally:
        shutil.rmtree(folder)


@pytest.mark.parametrize("action", ["generate", "compare"])
@pytest.mark.parametrize("bad, named", [
    (dict(max_new_tokens=0), "max new tokens"), (dict(max_new_tokens=10**9), "max new tokens"),
    (dict(temperature=-1), "temperature"), (dict(temperature=1e9), "temperature"),
    (dict(top_p=0), "top-p"), (dict(top_p=2), "top-p"), (dict(top_k=-1), "top-k"),
    (dict(repetition_penalty=0), "repetition penalty"), (dict(repetition_penalty=100), "repetition penalty"),
])
def test_the_studio_refuses_sampling_out_of_range_in_one_line(bad, named, action):
    """The playground's sliders can be bypassed by an API caller: the studio answers with one
    Japanese line that names the setting, not a traceback and not a generation."""
    from studio import callbacks as studio
    sampling = dict(max_new_tokens=10, temperature=0.8, top_p=0.95, top_k=50, repetition_penalty=1.1) | bad
    call = {"generate": lambda: studio.generate("「科学」とは", EMBEDDED_MODEL, "complete", **sampling),
            "compare": lambda: studio.compare("「科学」とは", EMBEDDED_MODEL, EMBEDDED_MODEL, "complete",
                                              **sampling)}[action]
    message = refusal(call)
    assert message.startswith("設定値が正しくありません：") and named in message and "\n" not in message


# ---------------------------------------------------------------------------------------------
# A public Space: every visitor sees and touches only their own runs (studio/owners.py). The
# studio's callbacks are called directly, as Gradio calls them, in the Space's private mode.

@pytest.fixture
def space(monkeypatch, tiny_model):
    """The studio in private mode (what SPACE_ID switches on), over its usual work folder."""
    from studio import shared
    from studio.owners import Owners
    monkeypatch.setattr(shared, "OWNERS", Owners(shared.WORK, shared.POLICY, private=True))
    return shared


def finished_run_of(space, session: str, name: str, tiny_model) -> str:
    """A finished run in the visitor's own runs folder, as training leaves it (the embedded model's
    files stand in for trained weights)."""
    import json
    owner = space.OWNERS.owner(session=session)
    folder = space.OWNERS.runs_dirs(owner)[0] / name
    shutil.copytree(tiny_model, folder)
    (folder / "metrics.json").write_text(json.dumps({
        "method": "full", "base_model": tiny_model, "heldout_perplexity_before": 40.0,
        "heldout_perplexity_after": 20.0, "steps": 1, "seconds": 1}), encoding="utf-8")
    return str(folder)


def refusal(call) -> str:
    import gradio as gr
    with pytest.raises(gr.Error) as err:
        result = call()
        if hasattr(result, "__next__"):
            list(result)
    return err.value.message


def test_a_visitor_can_neither_see_nor_touch_anothers_run(space, tiny_model):
    from studio import callbacks as studio
    from studio.owners import new_session_key
    a, b = new_session_key(), new_session_key()
    a_run = finished_run_of(space, a, "run-20261204-101500", tiny_model)
    owner_b = space.OWNERS.owner(session=b)
    # B's lists hold none of A's runs.
    assert studio.owned_runs(owner_b) == []
    assert a_run not in [value for _, value in studio.model_choices("ja", owner_b)]
    assert studio.share_runs("ja", b)["choices"] == []
    assert studio.training_status(b)["state"] == "idle"
    # Every action naming A's run tells B what a run that does not exist tells it.
    missing = str(space.OWNERS.runs_dirs(owner_b)[0] / "run-20261204-101500")
    expected = refusal(lambda: studio.make_zip(missing, False, b))
    assert "見つかりません" in expected
    for name, call in {
        "zip": lambda: studio.make_zip(a_run, False, b),
        "push": lambda: studio.push_to_hub(a_run, "stolen", True, "some-token", b),
        "generate": lambda: studio.generate("「科学」とは", a_run, "complete", 5, session=b),
        "compare": lambda: studio.compare("「科学」とは", tiny_model, a_run, "complete", 5, session=b),
        "tokenize": lambda: studio.tokenize("こんにちは", a_run, b),
        "delete": lambda: studio.delete_run(a_run, "ja", b),
        "resume": lambda: studio.resume_training(a_run, b),
        "train on it": lambda: studio.start_training(None, "文章です。" * 50, a_run, "full", 1, 1, session=b),
    }.items():
        assert refusal(call) == expected, name
    # A, meanwhile, uses it as before.
    assert (space.WORK / "exports").resolve() in Path(studio.make_zip(a_run, False, a)).resolve().parents
    assert list(studio.generate("「科学」とは", a_run, "complete", 3, session=a))[-1][1]["role"] == "assistant"
    assert studio.share_runs("ja", a)["choices"][0][1] == a_run


def test_a_signed_in_visitor_keeps_what_their_browser_made(space, tiny_model):
    import gradio as gr

    from studio import callbacks as studio
    from studio.owners import new_session_key
    browser = new_session_key()
    before = finished_run_of(space, browser, "run-before-sign-in", tiny_model)
    alice = gr.OAuthProfile({"name": "Alice", "preferred_username": "alice", "profile": "", "picture": ""})
    owner = studio.owner_of(browser, None, alice)
    assert owner.signed_in == "alice" and owner.folders[0].startswith("u-") and owner.folders[1].startswith("a-")
    assert [str(run) for run in studio.owned_runs(owner)] == [before]
    # Someone else signed in sees none of it.
    bob = gr.OAuthProfile({"name": "Bob", "preferred_username": "bob", "profile": "", "picture": ""})
    assert studio.owned_runs(studio.owner_of(new_session_key(), None, bob)) == []


def test_session_keys_must_be_unguessable(space):
    from studio import callbacks as studio
    assert "session key" in refusal(lambda: studio.training_status("guessable"))
    assert studio.page_session("guessable") != "guessable"               # the page replaces a bad one
    key = studio.new_session()
    assert studio.page_session(key) == key and len(key) >= 43


def test_delete_removes_the_run_and_its_zip(space, tiny_model):
    from studio import callbacks as studio
    from studio.owners import new_session_key
    a = new_session_key()
    run = finished_run_of(space, a, "run-to-delete", tiny_model)
    zipped = Path(studio.make_zip(run, False, a))
    choices, message = studio.delete_run(run, "en", a)
    assert not Path(run).exists() and not zipped.exists()
    assert choices["choices"] == [] and "run-to-delete" in message
    assert "見つかりません" in refusal(lambda: studio.delete_run(run, "ja", a))  # gone: like any missing run


# ---------------------------------------------------------------------------------------------
# Whose token a push uses

def test_push_token_order(monkeypatch):
    from finetune.share import push_token
    monkeypatch.setenv("HF_TOKEN", "the-machines-token")
    assert push_token("typed", "signed-in") == ("typed", "typed")
    assert push_token("", "signed-in") == ("signed-in", "signed-in")
    assert push_token("", None) == ("the-machines-token", "local")
    assert push_token("  ", None, local=False) == (None, "none")              # a Space: never the server's


@pytest.fixture
def hub_online(monkeypatch):
    """The loopback Hub stub, with huggingface_hub online and pointed at it, and the Space owner's
    own token in HF_TOKEN (as a Space secret would set it)."""
    import huggingface_hub.constants as constants
    from hub_stub import HubStub
    with HubStub() as stub:
        stub.add_user("owner-token", "space-owner")
        stub.add_user("visitor-token", "visitor")
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "ENDPOINT", stub.url)
        monkeypatch.setenv("HF_TOKEN", "owner-token")
        yield stub


def test_on_a_space_an_anonymous_push_never_uses_the_servers_token(space, tiny_model, hub_online):
    import gradio as gr

    from studio import callbacks as studio
    from studio.owners import new_session_key
    a = new_session_key()
    run = finished_run_of(space, a, "run-push", tiny_model)
    message = refusal(lambda: studio.push_to_hub(run, "my-model", True, "", a))
    assert "サーバーのトークンは使いません" in message
    assert hub_online.state.requests == [] and hub_online.state.repos == {}    # nothing reached the Hub
    assert "sign in with Hugging Face" in studio.token_note("", "en")
    # Signed in: the visitor's OAuth token pushes, into the visitor's account.
    token = gr.OAuthToken(token="visitor-token", scope="write-repos", expires_at=2_000_000_000)
    profile = gr.OAuthProfile({"name": "V", "preferred_username": "visitor", "profile": "", "picture": ""})
    assert "visitor" in studio.token_note("", "en", token, profile)
    shown = studio.push_to_hub(run, "my-model", True, "", a, None, token)
    assert "visitor/my-model" in shown and set(hub_online.state.repos) == {"visitor/my-model"}
    assert "model.safetensors" in hub_online.files["visitor/my-model"]


def test_off_a_space_the_local_user_may_rely_on_hf_token(tiny_model, hub_online):
    from studio import callbacks as studio, shared
    assert not shared.OWNERS.private
    run = shared.WORK / "runs" / "run-local-push"
    shutil.copytree(tiny_model, run)
    try:
        assert "this machine's token" in studio.token_note("", "en")
        assert "space-owner/local-model" in studio.push_to_hub(str(run), "local-model", True, "")
    finally:
        shutil.rmtree(run)
