"""Find and load a causal language model: a Hub id, a local folder, or a LoRA output folder.

Loading never hangs on an unreachable Hub: a Hub id that is not in the local cache is only fetched
after a quick reachability check, and otherwise fails with a message naming the offline model.
"""
from __future__ import annotations

import json
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from .errors import ModelNotAvailable
from .tokens import Parity, load_tokenizer

DEFAULT_BASE = "rinna/japanese-gpt2-xsmall"
# The model the project trains and ships itself (assets/build_tiny_model.sh), usable offline.
EMBEDDED_MODEL = str(Path(__file__).resolve().parent.parent / "assets" / "tiny-japanese-gpt2")
OFFLINE_HINT = f"use the embedded model instead: --model {EMBEDDED_MODEL}"


@dataclass
class ModelSource:
    """Where a model comes from, resolved before anything heavy is loaded."""
    name: str                 # what the user typed
    path: str                 # local folder, or the Hub id
    local_files_only: bool    # True for folders and for Hub models already in the cache
    adapter: bool = False     # a LoRA output folder (adapter_config.json, no full weights)
    base: str | None = None   # for adapters: the base model they apply to


def hub_reachable(timeout: float = 3.0) -> bool:
    """Can we open a TCP connection to the Hub endpoint within `timeout` seconds?"""
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on"):
        return False
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def is_cached(repo_id: str) -> bool:
    """Is this Hub model's config already in the local cache?"""
    from huggingface_hub import try_to_load_from_cache
    return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)


def resolve_source(name: str) -> ModelSource:
    """Turn a user's model string into a ModelSource, or raise ModelNotAvailable with a reason."""
    name = name.strip()
    if not name:
        raise ModelNotAvailable("no model given")
    folder = Path(name).expanduser()
    if folder.is_dir():
        adapter_config = folder / "adapter_config.json"
        if adapter_config.is_file():
            base = json.loads(adapter_config.read_text(encoding="utf-8")).get("base_model_name_or_path")
            return ModelSource(name, str(folder.resolve()), True, adapter=True, base=base)
        if not (folder / "config.json").is_file():
            raise ModelNotAvailable(f"{name} is a folder but holds no model (config.json is missing)")
        # Absolute, so that a LoRA adapter records a base path that works from any directory.
        return ModelSource(name, str(folder.resolve()), True)
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise ModelNotAvailable(f"{name}: no such folder")
    if is_cached(name):
        return ModelSource(name, name, True)
    if not hub_reachable():
        raise ModelNotAvailable(
            f"{name} is not in the local cache and the Hugging Face Hub cannot be reached (offline?); "
            + OFFLINE_HINT)
    return ModelSource(name, name, False)


def load_model(source: ModelSource, device: str = "cpu", dtype=None):
    """The model on `device`, in fp32 unless `dtype` says otherwise (training keeps fp32 master
    weights; autocast does the fast math). LoRA folders come back as a PeftModel."""
    import torch
    from transformers import AutoModelForCausalLM
    dtype = dtype or torch.float32
    if source.adapter:
        from peft import PeftModel
        base = load_model(resolve_source(source.base), device, dtype)
        return PeftModel.from_pretrained(base, source.path).to(device)
    try:
        # trust_remote_code=False, never left unset: unset, transformers asks on a terminal whether to
        # run the model's own Python code. A model that needs it is refused (ValueError).
        model = AutoModelForCausalLM.from_pretrained(
            source.path, local_files_only=source.local_files_only, dtype=dtype, trust_remote_code=False)
    except (OSError, ValueError) as err:
        raise ModelNotAvailable(f"cannot load model {source.name}: {first_line(err)}") from err
    return model.to(device)


def load_tokenizer_for(source: ModelSource) -> tuple[object, Parity]:
    """The (repaired if needed) tokenizer of a model. Adapter folders carry their own copy."""
    try:
        return load_tokenizer(source.path, local_files_only=source.local_files_only)
    except (OSError, ValueError) as err:
        raise ModelNotAvailable(f"cannot load the tokenizer of {source.name}: {first_line(err)}") from err


def first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}(/[A-Za-z0-9][\w.-]{0,95})?$")


@dataclass(frozen=True)
class ModelPolicy:
    """Which model names a shared front end (the studio on a public Space) accepts: Hub ids, and
    folders inside `roots` only, so a visitor cannot make the server read /etc, ~/.ssh or ../.
    URLs are refused. (The CLI has no policy: its user owns the machine.) Models that need their
    own Python code are refused by `load_model` in every case."""
    roots: tuple[str, ...]

    def check(self, name: str) -> None:
        """Raise ModelNotAvailable with the reason when `name` is not allowed."""
        name = name.strip()
        if "\x00" in name or "://" in name or name.lower().startswith(("http:", "https:", "file:")):
            raise ModelNotAvailable(f"{name!r}: URLs are not accepted; give a Hub id (owner/name) or a folder")
        if self.looks_like_path(name):
            real = os.path.realpath(os.path.expanduser(name))
            if not any(real == root or real.startswith(root + os.sep) for root in self.real_roots()):
                raise ModelNotAvailable(f"{name}: only model folders inside the app's own folders can be opened")
            return
        if not HUB_ID.match(name) or ".." in name:
            raise ModelNotAvailable(f"{name!r} is not a Hub model id (owner/name)")

    @staticmethod
    def looks_like_path(name: str) -> bool:
        return name.startswith(("/", ".", "~", "\\")) or ".." in name or os.path.isdir(name) or name.count("/") > 1

    def real_roots(self) -> list[str]:
        return [os.path.realpath(root) for root in self.roots]
