"""Share a training output folder: push it to the Hugging Face Hub, or export it as a zip.

What goes out is an allow-list, never "the whole folder": weights, model and tokenizer configs,
the sentencepiece model, training_config.json and metrics.json (both with local paths and file
names removed), and a generated model card (README.md). progress.jsonl, checkpoints, STOP files and
anything else in the folder stay on the user's machine.

Layouts (the `what` setting):
  adapter  the LoRA adapter in the repo root (load with peft)
  merged   the LoRA merged into its base, saved as a full model (load with plain transformers);
           for a full fine-tuning run this is simply the trained model
  both     the merged model in the root, the adapter under adapter/ (peft: subfolder="adapter")
  auto     adapter when the base model is on the Hub, merged otherwise (an adapter whose base
           exists only on this machine is useless to anyone else)

The access token is used for HTTP requests only: it is never written to disk, logged, put in a
settings object, a card, or any uploaded file.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .card import model_card
from .errors import FinetuneError
from .tokens import SPM_FILE_NAMES

log = logging.getLogger(__name__)

WHAT_CHOICES = ("auto", "adapter", "merged", "both")
ADAPTER_SUBFOLDER = "adapter"
CONFIG_FILE = "training_config.json"   # same names as finetune.train writes
METRICS_FILE = "metrics.json"
MODEL_CONFIG_FILES = ("config.json", "generation_config.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                   "vocab.json", "merges.txt", "chat_template.jinja", *SPM_FILE_NAMES)
# Keys of training_config.json that name places on the user's machine or their files.
PRIVATE_CONFIG_KEYS = ("data", "out", "heldout_documents")
# Licenses of base models we know; a fine-tune inherits its base's license unless the user picks one.
BASE_LICENSES = {
    "rinna/japanese-gpt2-xsmall": "mit",
    "rinna/japanese-gpt2-small": "mit",
    "rinna/japanese-gpt2-medium": "mit",
}
EMBEDDED_NAME = "tiny-japanese-gpt2"
EMBEDDED_LICENSE = "apache-2.0"   # the project's own license (README front matter)
FROM_SCRATCH = "scratch"          # the base name finetune.scratch records: no base model at all
ZIP_HINT_EN = "use Export (python -m finetune export --model DIR --out model.zip) to save the model as a zip instead"
ZIP_HINT_JA = "代わりに「zip で書き出す」（python -m finetune export --model DIR --out model.zip）でモデルを保存できます"


# ---------------------------------------------------------------------------------------------
# Errors: English message (str(err)) for the CLI and logs, Japanese `message_ja` for the app.

class ShareError(FinetuneError):
    """A push or export problem, explained in English (str) and in Japanese (`message_ja`)."""

    def __init__(self, message: str, message_ja: str):
        super().__init__(message)
        self.message_ja = message_ja


class NotLoggedIn(ShareError):
    """No token was given or found, or the Hub rejected it (invalid or expired)."""


class TokenLacksWrite(ShareError):
    """The token is valid but read-only (or fine-grained without write access to the repo)."""


class InvalidRepoName(ShareError):
    """The repo name breaks the Hub's naming rules."""


class RepoNotYours(ShareError):
    """The repo (or its namespace) belongs to another user or organization."""


class HubUnreachable(ShareError):
    """Offline mode is on, or the Hub cannot be reached over the network."""


class NotATrainedModel(ShareError):
    """The folder is not a training output (no weights), or the layout does not fit it."""


class PushFailed(ShareError):
    """Any other refusal by the Hub (rate limit, server error …), with the Hub's own message."""


# ---------------------------------------------------------------------------------------------
# Settings and what a folder holds

@dataclass
class PushSettings:
    """One push to the Hub. The token is deliberately not a field: settings get logged and shown."""
    model_dir: str = field(default="", metadata={"help": "training output folder (finetune train --out)"})
    repo: str = field(default="", metadata={"help": "repo name, 'name' (under your account) or 'owner/name'"})
    what: str = field(default="auto", metadata={
        "help": "adapter, merged, both (merged in the root, adapter in adapter/) or auto "
                "(adapter if the base model is on the Hub, else merged)"})
    private: bool = field(default=False, metadata={"help": "create the repo as private"})
    base_model: str = field(default="", metadata={
        "help": "Hub id of the base model when training used a local copy of it; empty = detect"})
    license: str = field(default="", metadata={
        "help": "license id for the card; empty = the base model's license when known, else 'other'"})
    endpoint: str = field(default="", metadata={"help": "Hub URL; empty = HF_ENDPOINT or huggingface.co"})
    commit_message: str = field(default="Upload fine-tuned Japanese model", metadata={"help": "commit title"})

    def __post_init__(self):
        if self.what not in WHAT_CHOICES:
            raise ValueError(f"what must be one of {WHAT_CHOICES}, got {self.what!r}")
        if not self.model_dir:
            raise ValueError("no model folder given")
        if not self.repo.strip():
            raise InvalidRepoName("no repo name given", "リポジトリ名が入力されていません")
        if self.endpoint and not self.endpoint.startswith(("http://", "https://")):
            raise ValueError(f"endpoint must be an http(s) URL, got {self.endpoint!r}")
        self.repo = self.repo.strip()


@dataclass
class ModelFolder:
    """What a training output folder holds and how it can be shared."""
    path: Path
    kind: str                  # "full" or "lora"
    hub_base: str | None       # the base model's Hub id, when known
    base_name: str             # the base as shown publicly: Hub id, or a local folder's name
    base_path: str | None      # the base as the adapter names it (may be a local path)
    config: dict               # training_config.json
    metrics: dict              # metrics.json

    @property
    def choices(self) -> tuple[str, ...]:
        return ("merged",) if self.kind == "full" else ("adapter", "merged", "both")

    @property
    def default_what(self) -> str:
        if self.kind == "full":
            return "merged"
        return "adapter" if self.hub_base else "merged"

    @property
    def embedded_base(self) -> bool:
        return self.hub_base is None and self.base_name == EMBEDDED_NAME

    @property
    def from_scratch(self) -> bool:
        return self.hub_base is None and self.base_name == FROM_SCRATCH


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def model_folder(model_dir: str | Path, base_model: str = "") -> ModelFolder:
    """Inspect a training output folder; raise NotATrainedModel if it holds no trained weights."""
    path = Path(model_dir).expanduser()
    if (path / "adapter_model.safetensors").is_file() and (path / "adapter_config.json").is_file():
        kind = "lora"
    elif (path / "config.json").is_file() and any(path.glob("model*.safetensors")):
        kind = "full"
    else:
        raise NotATrainedModel(
            f"{path} holds no trained model (model.safetensors or adapter_model.safetensors is missing)",
            f"{path} に学習済みモデルがありません（model.safetensors または adapter_model.safetensors がない）")
    config, metrics = read_json(path / CONFIG_FILE), read_json(path / METRICS_FILE)
    base_path = read_json(path / "adapter_config.json").get("base_model_name_or_path") if kind == "lora" else None
    # The user-facing base name first (a run from a temporary copy records that copy as "model").
    candidates = [base_model, config.get("base_model"), metrics.get("base_model"), base_path, config.get("model")]
    if base_model and hub_id_of(base_model) is None:
        raise InvalidRepoName(f"base model {base_model!r} is not a Hub model id (owner/name)",
                              f"ベースモデル {base_model!r} は Hub のモデルID（owner/name）ではありません")
    hub_base = next((hub_id_of(c) for c in candidates if c and hub_id_of(c)), None)
    shown = next((str(c) for c in candidates if c), "unknown")
    base_name = hub_base or scrub_paths(shown)
    return ModelFolder(path, kind, hub_base, base_name, base_path, config, metrics)


def hub_id_of(name: str) -> str | None:
    """The Hub id a model string stands for: itself if it is shaped like one and is not a local
    folder, the repo of a Hub cache snapshot path, else None."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id
    name = str(name).strip()
    cached = re.search(r"models--([^/\\]+?)--([^/\\]+)[/\\]snapshots[/\\]", name)
    if cached:
        return f"{cached.group(1)}/{cached.group(2)}"
    if Path(name).expanduser().is_dir() or name.startswith((".", "/", "~")) or name.count("/") != 1:
        return None
    try:
        validate_repo_id(name)
    except HFValidationError:
        return None
    return name


def default_license(folder: ModelFolder) -> str:
    """The base model's license when we know it, else 'other' (the user should pick one)."""
    if folder.hub_base in BASE_LICENSES:
        return BASE_LICENSES[folder.hub_base]
    return EMBEDDED_LICENSE if folder.embedded_base else "other"


def resolve_what(folder: ModelFolder, what: str) -> str:
    """The layout to upload: `what`, with auto resolved and impossible choices refused."""
    what = folder.default_what if what == "auto" else what
    if what not in folder.choices:
        raise NotATrainedModel(
            f"{folder.path} is a full fine-tune: there is no LoRA adapter to push as {what!r}; use 'merged'",
            f"{folder.path} は全体（full）学習の結果なので、LoRA アダプタはありません。「merged」を選んでください")
    return what


# ---------------------------------------------------------------------------------------------
# The files of a model repo

def looks_local(value: str) -> bool:
    """A string that names a place on this machine (absolute, home-relative, relative or Windows path)."""
    if value.startswith(("/", "~", "./", "../", "\\")) or re.match(r"^[A-Za-z]:[\\/]", value):
        return True
    return ("/" in value or "\\" in value) and Path(value).expanduser().exists()


def scrub_paths(value):
    """`value` with every local path replaced by its last component (nested dicts and lists too)."""
    if isinstance(value, dict):
        return {k: scrub_paths(v) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub_paths(v) for v in value]
    if isinstance(value, str) and looks_local(value):
        return re.split(r"[\\/]", value.rstrip("/\\"))[-1]
    return value


def public_training_config(folder: ModelFolder) -> dict:
    """training_config.json without paths or file names from the user's machine."""
    config = scrub_paths({k: v for k, v in folder.config.items() if k not in PRIVATE_CONFIG_KEYS})
    config["model"] = config["base_model"] = folder.base_name
    config["data_entries"] = len(folder.config.get("data", []))
    config["heldout_document_count"] = len(folder.config.get("heldout_documents", []))
    return config


def public_metrics(folder: ModelFolder) -> dict:
    return {**scrub_paths(folder.metrics), "base_model": folder.base_name} if folder.metrics else {}


def write_json(path: Path, data: dict):
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def place(src: Path, dest: Path):
    """Put a copy of `src` at `dest`: a hard link when possible (weights can be large), else a copy."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dest)
    except OSError:
        shutil.copyfile(src, dest)


def copy_present(src_dir: Path, names, dest_dir: Path):
    for name in names:
        if (src_dir / name).is_file():
            place(src_dir / name, dest_dir / name)


def copy_full_weights(src_dir: Path, dest_dir: Path):
    """model.safetensors, or its shards and index, plus the model configs."""
    for item in sorted(src_dir.glob("model*.safetensors")) + sorted(src_dir.glob("model*.safetensors.index.json")):
        place(item, dest_dir / item.name)
    copy_present(src_dir, MODEL_CONFIG_FILES, dest_dir)


def write_adapter(folder: ModelFolder, dest_dir: Path, base_ref: str):
    """The adapter weights and an adapter_config.json that names `base_ref` as its base."""
    place(folder.path / "adapter_model.safetensors", dest_dir / "adapter_model.safetensors")
    config = read_json(folder.path / "adapter_config.json")
    config["base_model_name_or_path"] = base_ref
    write_json(dest_dir / "adapter_config.json", config)


def merge_dtype(folder: ModelFolder):
    """The dtype a merged model is saved in: bf16 for a QLoRA run (its base was trained through
    bf16 math; the base is reloaded unquantized in bf16, never merged into 4-bit weights), else fp32."""
    import torch
    return torch.bfloat16 if folder.config.get("method") == "qlora" else torch.float32


def write_merged(folder: ModelFolder, dest_dir: Path):
    """The LoRA folded into its base weights (peft merge_and_unload), saved as a plain model."""
    from .models import load_model, resolve_source
    model = load_model(resolve_source(str(folder.path)), "cpu", merge_dtype(folder))
    merged = model.merge_and_unload()
    merged.save_pretrained(str(dest_dir))
    log.info("merged the adapter into %s", folder.base_name)


def stage_files(folder: ModelFolder, what: str, dest: Path, repo_ref: str, for_hub: bool,
                license: str = "") -> list[str]:
    """Write the files of a model repo for `folder` into `dest` (empty); return their paths.
    `repo_ref` is what the card's usage snippet loads; `for_hub` says whether the adapter may still
    point at a local base folder (an export on this machine) or must name something public."""
    dest.mkdir(parents=True, exist_ok=True)
    license = license or default_license(folder)
    base_ref = folder.hub_base or (folder.base_name if for_hub else (folder.base_path or folder.base_name))
    if folder.kind == "full":
        copy_full_weights(folder.path, dest)
    elif what == "adapter":
        write_adapter(folder, dest, base_ref)
    else:
        write_merged(folder, dest)
        if what == "both":
            write_adapter(folder, dest / ADAPTER_SUBFOLDER, base_ref)
    copy_present(folder.path, TOKENIZER_FILES, dest)
    if folder.config:
        write_json(dest / CONFIG_FILE, public_training_config(folder))
    if folder.metrics:
        write_json(dest / METRICS_FILE, public_metrics(folder))
    model_card(folder, what, repo_ref, license).save(str(dest / "README.md"))
    return sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())


# ---------------------------------------------------------------------------------------------
# The Hub

def offline_error() -> HubUnreachable:
    return HubUnreachable(
        f"offline mode is on (HF_HUB_OFFLINE), so nothing can be pushed to the Hub; {ZIP_HINT_EN}",
        f"オフラインモード（HF_HUB_OFFLINE）のため Hub へアップロードできません。{ZIP_HINT_JA}")


def unreachable_error(endpoint: str) -> HubUnreachable:
    return HubUnreachable(
        f"cannot reach the Hub at {endpoint} (no network?); {ZIP_HINT_EN}",
        f"Hub（{endpoint}）に接続できません（ネットワークがない？）。{ZIP_HINT_JA}")


def not_logged_in(rejected: bool, local: bool = True) -> NotLoggedIn:
    if not rejected and not local:
        return NotLoggedIn("no access token: sign in with Hugging Face or paste a write token (this app never "
                           "pushes with its own server's token)",
                           "アクセストークンがありません。「Sign in with Hugging Face」でログインするか、write 権限の"
                           "トークンを入力してください（このアプリのサーバーのトークンは使いません）")
    if rejected:
        return NotLoggedIn("the Hub rejected the access token (invalid or expired); create a new one at "
                           "https://huggingface.co/settings/tokens",
                           "アクセストークンが Hub に拒否されました（無効または期限切れ）。"
                           "https://huggingface.co/settings/tokens で作り直してください")
    return NotLoggedIn("not logged in: no Hugging Face access token (set HF_TOKEN or log in with the app's button)",
                       "ログインしていません: Hugging Face のアクセストークンがありません"
                       "（HF_TOKEN を設定するか、アプリのボタンでログインしてください）")


def lacks_write(repo_id: str) -> TokenLacksWrite:
    return TokenLacksWrite(
        f"the access token cannot write to {repo_id}: create a token with the 'write' role "
        "(or a fine-grained token with write access to your repos)",
        f"このアクセストークンでは {repo_id} に書き込めません。「write」権限のトークン"
        "（または自分のリポジトリへの書き込みを許可した fine-grained トークン）を使ってください")


def not_yours(repo_id: str, user: str) -> RepoNotYours:
    owner = repo_id.split("/")[0]
    return RepoNotYours(
        f"{repo_id} belongs to {owner!r}, not to you ({user}); push to {user}/{repo_id.split('/')[-1]} instead",
        f"{repo_id} は {owner} のものです（あなたは {user}）。{user}/{repo_id.split('/')[-1]} などに変えてください")


def invalid_name(name: str, detail: str) -> InvalidRepoName:
    return InvalidRepoName(
        f"invalid repo name {name!r}: use letters, digits, '-', '_' or '.', at most 96 characters, "
        f"not starting or ending with '-' or '.', no '--' or '..' ({detail})",
        f"リポジトリ名 {name!r} は使えません。英数字と「-」「_」「.」だけで96文字まで、"
        "先頭と末尾に「-」「.」を置かず、「--」「..」を含めないでください")


def hub_error(err: Exception, repo_id: str, endpoint: str) -> ShareError | None:
    """The ShareError for an exception raised by huggingface_hub, or None if it is not a Hub error."""
    import httpx2
    from huggingface_hub.errors import (BadRequestError, HFValidationError, HfHubHTTPError,
                                        LocalTokenNotFoundError, OfflineModeIsEnabled, RepositoryNotFoundError)
    if isinstance(err, OfflineModeIsEnabled):
        return offline_error()
    if isinstance(err, LocalTokenNotFoundError):
        return not_logged_in(rejected=False)
    if isinstance(err, HFValidationError):
        return invalid_name(repo_id, str(err))
    if isinstance(err, (httpx2.TransportError, ConnectionError, TimeoutError)):
        return unreachable_error(endpoint)
    if not isinstance(err, HfHubHTTPError):
        return None
    status = err.response.status_code if err.response is not None else None
    detail = err.server_message or str(err).strip().splitlines()[0]
    if isinstance(err, RepositoryNotFoundError):
        return RepoNotYours(f"cannot write to {repo_id}: it belongs to someone else or your token cannot see it",
                            f"{repo_id} に書き込めません。ほかの人のリポジトリか、トークンから見えません")
    if status == 401:
        return not_logged_in(rejected=True)
    if status == 403:
        return lacks_write(repo_id)
    if status == 409:
        return RepoNotYours(f"{repo_id} already exists and cannot be written by you ({detail})",
                            f"{repo_id} はすでに存在し、あなたは書き込めません")
    if isinstance(err, BadRequestError) and "name" in detail.lower():
        return invalid_name(repo_id, detail)
    return PushFailed(f"the Hub refused the upload to {repo_id}: {detail}",
                      f"Hub が {repo_id} へのアップロードを受け付けませんでした: {detail}")


@contextmanager
def hub_errors(repo_id: str, endpoint: str):
    """Re-raise huggingface_hub's exceptions inside the block as ShareErrors; others pass unchanged."""
    try:
        yield
    except ShareError:
        raise
    except Exception as err:
        mapped = hub_error(err, repo_id, endpoint)
        if mapped is None:
            raise
        raise mapped from err


TOKEN_SOURCES = ("typed", "signed-in", "local", "none")


def push_token(typed: str | None = None, signed_in: str | None = None, local: bool = True) -> tuple[str | None, str]:
    """(token, where it comes from) for a push: the token typed in (or passed), else the signed-in
    visitor's, else, only when `local` (the machine's own user: the CLI, a studio off a Space), the
    one huggingface_hub finds (HF_TOKEN, `hf auth login`). A studio serving strangers passes
    local=False, so that its owner's token never pushes a visitor's model."""
    typed, signed_in = (typed or "").strip(), (signed_in or "").strip()
    if typed:
        return typed, "typed"
    if signed_in:
        return signed_in, "signed-in"
    if local:
        from huggingface_hub import get_token
        found = get_token()
        if found:
            return found, "local"
    return None, "none"


def token_for(token: str | None, local: bool = True) -> str:
    """The token to use (see `push_token`); NotLoggedIn when there is none."""
    chosen, _ = push_token(token, local=local)
    if not chosen:
        raise not_logged_in(rejected=False, local=local)
    return chosen


def whoami_namespaces(api) -> tuple[str, set[str], str | None]:
    """(user name, namespaces the user may write to, token role) from the Hub's whoami."""
    info = api.whoami()
    user = info.get("name", "")
    orgs = {org.get("name", "") for org in info.get("orgs", []) if isinstance(org, dict)}
    role = ((info.get("auth") or {}).get("accessToken") or {}).get("role")
    return user, {user} | orgs, role


def full_repo_id(repo: str, user: str) -> str:
    """'name' becomes 'user/name'; the result is checked against the Hub's naming rules."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id
    repo_id = repo if "/" in repo else f"{user}/{repo}"
    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise invalid_name(repo, str(err)) from err
    if len(repo_id.split("/")[-1]) > 96:
        raise invalid_name(repo, "too long")
    return repo_id


def hub_endpoint(settings: PushSettings) -> str:
    from huggingface_hub import constants
    return (settings.endpoint or constants.ENDPOINT).rstrip("/")


def push(settings: PushSettings, token: str | None = None, local: bool = True) -> str:
    """Push a training output folder to the Hub as a model repo; return the repo's URL. `token`:
    the one to use; when empty, and only when `local`, the machine's own (see `push_token`).
    Raises a ShareError subclass (with `message_ja`) for every problem the user can fix."""
    from huggingface_hub import HfApi, constants
    folder = model_folder(settings.model_dir, settings.base_model)
    what = resolve_what(folder, settings.what)
    endpoint = hub_endpoint(settings)
    if constants.is_offline_mode():
        raise offline_error()
    token = token_for(token, local=local)
    api = HfApi(endpoint=endpoint, token=token)
    with hub_errors(settings.repo, endpoint):
        user, namespaces, role = whoami_namespaces(api)
    repo_id = full_repo_id(settings.repo, user)
    if repo_id.split("/")[0] not in namespaces:
        raise not_yours(repo_id, user)
    if role == "read":
        raise lacks_write(repo_id)
    with tempfile.TemporaryDirectory(prefix="finetune-push-") as tmp:
        staged = Path(tmp) / "repo"
        files = stage_files(folder, what, staged, repo_id, for_hub=True, license=settings.license)
        log.info("pushing %d files (%s) from %s to %s", len(files), what, folder.path, repo_id)
        with hub_errors(repo_id, endpoint):
            url = api.create_repo(repo_id, private=settings.private, exist_ok=True, repo_type="model")
            api.upload_folder(repo_id=repo_id, folder_path=str(staged), repo_type="model",
                              commit_message=settings.commit_message)
    log.info("pushed to %s", url)
    return str(url)


# ---------------------------------------------------------------------------------------------
# Export without the Hub

def export_zip(model_dir: str | Path, out_zip: str | Path, merge: bool = False) -> Path:
    """Write a zip that unpacks to one folder loadable with plain transformers (full model, or a LoRA
    with merge=True) or peft (a LoRA adapter); the same files a Hub push would upload. Returns the
    zip's path."""
    folder = model_folder(model_dir)
    what = "merged" if merge or folder.kind == "full" else "adapter"
    out_zip = Path(out_zip).expanduser()
    if out_zip.suffix.lower() != ".zip":
        raise ValueError(f"the export file must end in .zip, got {out_zip.name}")
    root = out_zip.stem
    out_zip.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="finetune-export-") as tmp:
        staged = Path(tmp) / root
        files = stage_files(folder, what, staged, f"./{root}", for_hub=False)
        partial = out_zip.with_name(out_zip.name + ".partial")
        with zipfile.ZipFile(partial, "w") as archive:
            for name in files:
                # Weights barely compress; storing them keeps the export fast.
                kind = zipfile.ZIP_STORED if name.endswith(".safetensors") else zipfile.ZIP_DEFLATED
                archive.write(staged / name, f"{root}/{name}", compress_type=kind)
        os.replace(partial, out_zip)
    log.info("exported %s (%s) to %s", folder.path, what, out_zip)
    return out_zip
