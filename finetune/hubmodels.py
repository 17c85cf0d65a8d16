"""Hub models for a shared front end (the studio on a public Space): which base model to offer by
default, whether a Hub model may be downloaded at all, and fetching the default in the background.

- `default_base()`: rinna/japanese-gpt2-xsmall when the Hub can be reached (or the model is already
  in the local cache), else the embedded model, with a reason code the UI turns into a note.
- `check_download(repo_id, token)`: before anything of a Hub model is downloaded, read its file list
  with sizes (`model_info(files_metadata=True)`, with the caller's token), work out what loading
  would fetch (the weights format transformers picks, the config and tokenizer files) and refuse
  models over the size limit (`STUDIO_MAX_MODEL_GB`) and gated or private repos that token cannot
  read. A refusal downloads nothing. `ModelPolicy.check_download` (models.py) calls it for the
  studio's model loading (finetune.cache); the CLI does not: its user may load what they like.
- `prefetch()`: the default base's files into the Hugging Face cache, in a background thread.

Tokens follow huggingface_hub: a string is used as is, False means anonymous, None means whatever
huggingface_hub finds on this machine (HF_TOKEN, a stored login). A front end serving strangers
passes the visitor's own token or False, never None, so the server's token reads nothing for them.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field

from .errors import FinetuneError, ModelNotAvailable
from .models import DEFAULT_BASE, EMBEDDED_MODEL, can_connect, first_line, is_cached

log = logging.getLogger(__name__)

GB = 10**9                       # decimal gigabytes, as the Hub shows sizes
MAX_MODEL_ENV = "STUDIO_MAX_MODEL_GB"
CPU_MAX_MODEL_GB = 2.0           # a CPU Space trains xsmall/small models; 2 GB is a ~1B-parameter bf16 checkpoint
# On a GPU: a quarter of its memory, at most 16 GB. Checkpoints are mostly bf16/fp16 and this engine
# loads weights in fp32 (twice the file's size), so a quarter keeps the loaded copy within half the
# card, leaving the rest for activations and a LoRA run (full fine-tuning needs about 4x the fp32
# weights anyway). 16 GB (an ~8B-parameter bf16 checkpoint) because the download lands on the
# Space's disk (50 GB ephemeral) next to the runs, and a bigger one takes many minutes to fetch.
GPU_MAX_MODEL_GB_CAP = 16.0
REACHABILITY_TIMEOUT_S = 2.0     # a TCP connect to the Hub; longer only delays the page when offline
REACHABILITY_TTL_S = 120.0       # how long a reachability answer is reused (pages load often)
INFO_TTL_S = 300.0               # how long a repo's file list (per token) is reused before asking again

# Reason codes of default_base(), for the UI's note (its Japanese and English text live in the studio).
HUB_REACHABLE = "hub-reachable"      # the Hub answered: the default Hub model
CACHED_OFFLINE = "cached-offline"    # the Hub is out of reach, but the Hub model is in the local cache
OFFLINE_MODE = "offline-mode"        # HF_HUB_OFFLINE is set: the embedded model
HUB_UNREACHABLE = "hub-unreachable"  # no connection to the Hub within the timeout: the embedded model

PARTS = ("model", "tokenizer")
CONFIG_FILES = ("config.json",)                     # both loaders read it (AutoTokenizer too)
MODEL_FILES = ("generation_config.json",)           # asked for by every causal LM load
TOKENIZER_FILES = ("tokenizer_config.json", "tokenizer.json", "special_tokens_map.json", "added_tokens.json",
                   "chat_template.jinja", "chat_template.json", "spiece.model", "tokenizer.model",
                   "sentencepiece.bpe.model", "vocab.json", "merges.txt", "vocab.txt")
TOKENIZER_FOLDERS = ("additional_chat_templates/",)


# ---------------------------------------------------------------------------------------------
# Refusals: English message (str(err)) for logs and the CLI, Japanese `message_ja` for the studio.

class HubModelRefused(ModelNotAvailable):
    """A Hub model the front end will not download; nothing of it was downloaded."""

    def __init__(self, message: str, message_ja: str):
        super().__init__(message)
        self.message_ja = message_ja


class ModelTooLarge(HubModelRefused):
    """Loading the model would download more than the limit."""

    def __init__(self, repo_id: str, size_bytes: int, limit_bytes: int):
        self.repo_id, self.size_bytes, self.limit_bytes = repo_id, size_bytes, limit_bytes
        size, limit = gb_text(size_bytes), gb_text(limit_bytes)
        super().__init__(
            f"{repo_id} would download {size}, over this app's limit of {limit} ({MAX_MODEL_ENV}); "
            "nothing was downloaded. Choose a smaller model",
            f"{repo_id} は読み込みに {size} のダウンロードが必要で、このアプリの上限 {limit}（{MAX_MODEL_ENV}）を"
            "超えるため、ダウンロードしませんでした。もっと小さいモデルを選んでください")


class ModelGated(HubModelRefused):
    """A gated repo the caller's token has not been granted."""


class ModelNotFound(HubModelRefused):
    """No such repo, or a private one the caller's token cannot read (the Hub does not say which)."""


def gb_text(size_bytes: int) -> str:
    return f"{size_bytes / GB:.2f} GB" if size_bytes < 10 * GB else f"{size_bytes / GB:.0f} GB"


def whose(token) -> tuple[str, str]:
    """Who asked, in English and Japanese, for refusal messages."""
    if token is False:
        return "an anonymous visitor (no token)", "トークンなし（匿名）"
    return "the token given", "指定のトークン"


# ---------------------------------------------------------------------------------------------
# Is the Hub there?

_reachability: dict[str, tuple[float, bool]] = {}   # endpoint -> (when checked, reachable)
_infos: dict[tuple, tuple[float, object]] = {}       # (repo, token fingerprint) -> (when read, ModelInfo)
_memo_lock = threading.Lock()


def hub_status() -> str:
    """OFFLINE_MODE when HF_HUB_OFFLINE is set (as huggingface_hub read it), HUB_REACHABLE when a
    TCP connection to the Hub endpoint opens within REACHABILITY_TIMEOUT_S, else HUB_UNREACHABLE.
    The network answer is reused for REACHABILITY_TTL_S."""
    from huggingface_hub import constants
    if constants.is_offline_mode():
        return OFFLINE_MODE
    endpoint, now = constants.ENDPOINT, time.monotonic()
    with _memo_lock:
        checked = _reachability.get(endpoint)
    if checked is None or now - checked[0] > REACHABILITY_TTL_S:
        checked = (now, can_connect(endpoint, REACHABILITY_TIMEOUT_S))
        with _memo_lock:
            _reachability[endpoint] = checked
    return HUB_REACHABLE if checked[1] else HUB_UNREACHABLE


def hub_online() -> bool:
    return hub_status() == HUB_REACHABLE


def forget() -> None:
    """Drop every remembered answer (reachability, repo file lists): the next call asks again."""
    with _memo_lock:
        _reachability.clear()
        _infos.clear()


# ---------------------------------------------------------------------------------------------
# The default base model

@dataclass(frozen=True)
class DefaultBase:
    """The model a front end preselects (base model, tokenizer tab) and why."""
    model: str   # a Hub id or the embedded model's folder
    reason: str  # HUB_REACHABLE, CACHED_OFFLINE, OFFLINE_MODE or HUB_UNREACHABLE

    @property
    def on_hub(self) -> bool:
        return self.model != EMBEDDED_MODEL


def default_base(repo_id: str = DEFAULT_BASE) -> DefaultBase:
    """`repo_id` when the Hub can be reached or the model is already in the local cache, else the
    embedded model, with the reason."""
    status = hub_status()
    if status == HUB_REACHABLE:
        return DefaultBase(repo_id, HUB_REACHABLE)
    if is_cached(repo_id):
        return DefaultBase(repo_id, CACHED_OFFLINE)
    return DefaultBase(EMBEDDED_MODEL, status)


# ---------------------------------------------------------------------------------------------
# What loading a Hub model downloads

@dataclass(frozen=True)
class DownloadPlan:
    """The files loading a Hub model fetches (name -> bytes), at the commit that was inspected."""
    repo_id: str
    revision: str                     # the commit sha model_info answered for
    files: dict[str, int]
    cached: frozenset[str] = field(default_factory=frozenset)  # those already in the local cache

    @property
    def total_bytes(self) -> int:
        return sum(self.files.values())

    @property
    def download_bytes(self) -> int:
        """What loading now would actually fetch: the planned files not yet in the cache."""
        return sum(size for name, size in self.files.items() if name not in self.cached)


def max_model_bytes(device: str = "auto") -> int:
    """The download limit: STUDIO_MAX_MODEL_GB when set, else CPU_MAX_MODEL_GB on a CPU, or on a GPU
    a quarter of its memory capped at GPU_MAX_MODEL_GB_CAP (see there why)."""
    raw = os.environ.get(MAX_MODEL_ENV, "").strip()
    if raw:
        try:
            limit = float(raw)
        except ValueError:
            limit = float("nan")
        if not limit > 0:
            raise ValueError(f"{MAX_MODEL_ENV} must be a number of GB above 0, got {raw!r}")
        return int(limit * GB)
    from .devices import resolve_device
    if resolve_device(device) != "cuda":
        return int(CPU_MAX_MODEL_GB * GB)
    import torch
    card_gb = torch.cuda.get_device_properties(0).total_memory / GB
    return int(max(CPU_MAX_MODEL_GB, min(GPU_MAX_MODEL_GB_CAP, card_gb / 4)) * GB)


def planned_files(sizes: dict[str, int], parts=PARTS, repo_id: str = "") -> dict[str, int]:
    """Of a repo's files (name -> bytes), those that loading `parts` ("model", "tokenizer") fetches.
    Weights as transformers 5 picks them: model.safetensors, else the safetensors index and its
    shards, else pytorch_model.bin, else the .bin index and its shards. Shards are recognised by
    transformers' naming (model-00001-of-00004.safetensors); when none match, every top-level file
    of that format counts (too much rather than too little). A repo that holds a LoRA adapter
    (adapter_config.json) is refused: transformers would fetch its base model as well."""
    for part in parts:
        if part not in PARTS:
            raise ValueError(f"parts must be among {PARTS}, got {part!r}")
    wanted = [name for name in CONFIG_FILES if name in sizes]
    if "tokenizer" in parts:
        wanted += [name for name in sizes if name in TOKENIZER_FILES or name.startswith(TOKENIZER_FOLDERS)]
    if "model" in parts:
        if "adapter_config.json" in sizes:
            raise HubModelRefused(
                f"{repo_id} is a LoRA adapter; this app loads full models from the Hub only (loading an "
                "adapter would also download its base model). Load its base model instead",
                f"{repo_id} は LoRA アダプターです。このアプリが Hub から読み込めるのは完全なモデルだけです"
                "（アダプターを読み込むとベースモデルもダウンロードされるため）。ベースモデルを選んでください")
        wanted += [name for name in MODEL_FILES if name in sizes] + weights_files(sizes, repo_id)
    return {name: sizes[name] for name in dict.fromkeys(wanted)}


def weights_files(sizes: dict[str, int], repo_id: str = "") -> list[str]:
    """The weight files transformers 5 would download from a repo with these files."""
    for single, index, suffix in (("model.safetensors", "model.safetensors.index.json", ".safetensors"),
                                  ("pytorch_model.bin", "pytorch_model.bin.index.json", ".bin")):
        if single in sizes:
            return [single]
        if index in sizes:
            stem = single.removesuffix(suffix)
            shards = [n for n in sizes if re.fullmatch(rf"{stem}-\d+-of-\d+{re.escape(suffix)}", n)]
            return [index] + (shards or [n for n in sizes if "/" not in n and n.endswith(suffix)])
    raise HubModelRefused(
        f"{repo_id} holds no weights this app can load (model.safetensors or pytorch_model.bin, or their "
        "sharded index, in the repo's top folder)",
        f"{repo_id} には、このアプリで読み込める重み（最上位フォルダーの model.safetensors か "
        "pytorch_model.bin、またはその分割インデックス）がありません")


def readable_info(repo_id: str, token=None):
    """The repo's ModelInfo with file sizes, after checking that `token` may read its files
    (reused for INFO_TTL_S per repo and token). Raises ModelGated, ModelNotFound, or HubModelRefused
    when the Hub cannot tell (network, server error)."""
    from httpx2 import HTTPError
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, HFValidationError, RepositoryNotFoundError
    fingerprint = hashlib.sha256(token.encode()).hexdigest() if isinstance(token, str) else repr(token)
    key, now = (repo_id, fingerprint), time.monotonic()
    with _memo_lock:
        found = _infos.get(key)
    if found and now - found[0] <= INFO_TTL_S:
        return found[1]
    api, (who, who_ja) = HfApi(), whose(token)
    try:
        info = api.model_info(repo_id, files_metadata=True, token=token, timeout=30)
        if info.gated:   # a gated repo's file list is public; its files are not
            api.auth_check(repo_id, token=token)
    except GatedRepoError as err:
        raise ModelGated(
            f"{repo_id} is gated on the Hub and {who} has not been granted access; nothing was downloaded. "
            "Accept its conditions on the model's Hub page, then sign in or give a token that has access",
            f"{repo_id} は Hub で利用申請が必要なモデル（gated）で、{who_ja}にはアクセス権がないため、ダウンロード"
            "しませんでした。Hub のモデルページで条件に同意してから、サインインするかアクセス権のあるトークンを"
            "入力してください") from err
    except (RepositoryNotFoundError, HFValidationError) as err:
        raise ModelNotFound(
            f"{repo_id} was not found on the Hub, or it is private and {who} cannot read it; nothing was "
            "downloaded",
            f"{repo_id} は Hub に見つからないか、非公開で{who_ja}では読めないため、ダウンロードしませんでした") from err
    except (OSError, HTTPError) as err:   # network, rate limit, server error: no size, so no download
        raise HubModelRefused(
            f"cannot read the size of {repo_id} from the Hub ({first_line(err)}), so it was not downloaded; "
            "try again later",
            f"Hub から {repo_id} のサイズを読み取れなかったため、ダウンロードしませんでした。"
            "しばらくしてからもう一度お試しください") from err
    with _memo_lock:
        _infos[key] = (now, info)
    return info


def download_plan(repo_id: str, token=None, parts=PARTS) -> DownloadPlan:
    """What loading `parts` of a Hub model downloads, read from the Hub with `token` (see the
    module's note on tokens). Downloads nothing; raises ModelGated or ModelNotFound when the token
    cannot read the repo's files."""
    from huggingface_hub import try_to_load_from_cache
    info = readable_info(repo_id, token)
    sizes = {s.rfilename: s.size for s in info.siblings or []}
    unknown = sorted(name for name, size in sizes.items() if size is None)
    files = planned_files({n: s or 0 for n, s in sizes.items()}, parts, repo_id)
    if unknown and set(unknown) & set(files):
        raise HubModelRefused(
            f"the Hub did not give the size of {', '.join(sorted(set(unknown) & set(files)))} in {repo_id}, "
            "so it was not downloaded",
            f"Hub が {repo_id} のファイルサイズを返さなかったため、ダウンロードしませんでした")
    cached = frozenset(n for n in files if isinstance(try_to_load_from_cache(repo_id, n, revision=info.sha), str))
    return DownloadPlan(repo_id, info.sha, files, cached)


def check_download(repo_id: str, token=None, parts=PARTS, limit_bytes: int | None = None) -> DownloadPlan | None:
    """Before a Hub model is loaded for a shared front end: its DownloadPlan when it may be loaded;
    ModelTooLarge when the planned files (cached or not: the limit is on the model, which also
    bounds the memory loading takes) exceed `limit_bytes` (default max_model_bytes()); ModelGated
    or ModelNotFound when `token` cannot read it. None when the Hub is offline or out of reach:
    nothing can be downloaded then, and loading uses the local cache or fails with its reason."""
    if not hub_online():
        return None
    plan = download_plan(repo_id, token, parts)
    limit = max_model_bytes() if limit_bytes is None else limit_bytes
    if plan.total_bytes > limit:
        raise ModelTooLarge(repo_id, plan.total_bytes, limit)
    return plan


# ---------------------------------------------------------------------------------------------
# Fetching in the background

def fetch(repo_id: str = DEFAULT_BASE, token=None, limit_bytes: int | None = None) -> DownloadPlan | None:
    """Check, then download into the Hugging Face cache exactly the files loading the model and its
    tokenizer needs, so that a later load finds them there. None when the Hub is out of reach."""
    from huggingface_hub import hf_hub_download
    plan = check_download(repo_id, token, PARTS, limit_bytes)
    if plan is None:
        log.info("not prefetching %s: the Hub is offline or out of reach", repo_id)
        return None
    for name in plan.files:
        if name not in plan.cached:
            # The branch (not the inspected sha), so that the cache records main -> this commit and
            # loading by name later finds the files without asking the Hub.
            hf_hub_download(repo_id, name, token=token)
    log.info("prefetched %s (%s)", repo_id, gb_text(plan.download_bytes))
    return DownloadPlan(plan.repo_id, plan.revision, plan.files, frozenset(plan.files))


def prefetch(repo_id: str = DEFAULT_BASE, token=None, limit_bytes: int | None = None) -> Future:
    """Start `fetch` in a daemon thread and return its Future (the DownloadPlan, or None offline).
    A failure is logged as a warning and kept in the Future, never raised into the thread."""
    future: Future = Future()

    def work():
        future.set_running_or_notify_cancel()
        try:
            future.set_result(fetch(repo_id, token, limit_bytes))
        except Exception as err:  # whatever went wrong, the app keeps running without the prefetch
            expected = isinstance(err, (FinetuneError, OSError))   # a refusal, the network: no traceback needed
            log.warning("prefetching %s failed: %s", repo_id, first_line(err), exc_info=not expected)
            future.set_exception(err)

    threading.Thread(target=work, name=f"prefetch {repo_id}", daemon=True).start()
    return future
