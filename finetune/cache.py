"""Loaded tokenizers and models, shared by every request of a long-running process (the studio).

Loading a model takes seconds and hundreds of MB, so each is loaded once and kept, up to a bound;
the least recently used one is dropped first. A folder whose weights change on disk (a new run
written into it) is loaded again rather than served stale.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

from .devices import resolve_device
from .models import ModelPolicy, load_model, load_tokenizer_for, resolve_source
from .tokens import Parity, load_tokenizer

WEIGHT_FILES = ("model.safetensors", "adapter_model.safetensors", "pytorch_model.bin")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "spiece.model", "tokenizer.model")


def cache_key(name: str) -> tuple:
    """What identifies a loaded model: the folder and its weights' modification times, or the Hub id."""
    folder = Path(name.strip()).expanduser()
    if not folder.is_dir():
        return (name.strip(),)
    stamps = tuple((f, (folder / f).stat().st_mtime_ns) for f in WEIGHT_FILES if (folder / f).is_file())
    return (str(folder.resolve()), stamps)


def load_any_tokenizer(name: str) -> tuple[object, Parity]:
    """The tokenizer of a model, or of a folder that holds only a tokenizer (no config.json)."""
    folder = Path(name.strip()).expanduser()
    if folder.is_dir() and not any((folder / f).is_file() for f in ("config.json", "adapter_config.json")) \
            and any((folder / f).is_file() for f in TOKENIZER_FILES):
        return load_tokenizer(str(folder), local_files_only=True)
    return load_tokenizer_for(resolve_source(name))


class LRU:
    """A bounded mapping that forgets the least recently used entry; guarded by its own lock."""

    def __init__(self, size: int):
        self.size = size
        self.items: OrderedDict = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key):
        with self.lock:
            if key not in self.items:
                return None
            self.items.move_to_end(key)
            return self.items[key]

    def put(self, key, value):
        with self.lock:
            self.items[key] = value
            self.items.move_to_end(key)
            while len(self.items) > self.size:
                self.items.popitem(last=False)


class ModelCache:
    """Tokenizers (cheap, many kept) and models (expensive, few kept) by model name.
    Loading happens under one lock, so two requests for the same model load it once."""

    def __init__(self, max_models: int = 3, max_tokenizers: int = 8, device: str = "auto",
                 policy: ModelPolicy | None = None):
        self.tokenizers = LRU(max_tokenizers)
        self.models = LRU(max_models)
        self.device = device
        self.policy = policy
        self.loading = threading.Lock()

    def tokenizer(self, name: str, token=None) -> tuple[object, Parity]:
        """(tokenizer, parity) of a Hub id or folder. With a policy, a Hub model's size and access
        are checked for `token` (see ModelPolicy.check_download) on every call, before any download."""
        if self.policy:
            self.policy.check(name)
            self.policy.check_download(name, token, parts=("tokenizer",))
        key = cache_key(name)
        found = self.tokenizers.get(key)
        if found is None:
            with self.loading:
                found = self.tokenizers.get(key)
                if found is None:
                    found = load_any_tokenizer(name)
                    self.tokenizers.put(key, found)
        return found

    def model(self, name: str, token=None) -> tuple[object, object]:
        """(model in eval mode, tokenizer) of a Hub id, folder or LoRA output folder. With a policy:
        the name, and a Hub model's size and access for `token`, are checked on every call (a model
        already loaded for one caller is not served to one who may not read it); the weights check
        before a first load."""
        if self.policy:
            self.policy.check(name)
            self.policy.check_download(name, token)
        key = cache_key(name)
        found = self.models.get(key)
        if found is None:
            tokenizer, _ = self.tokenizer(name, token)
            if self.policy:
                self.policy.check_weights(name)
            with self.loading:
                found = self.models.get(key)
                if found is None:
                    model = load_model(resolve_source(name), resolve_device(self.device))
                    found = (model.eval(), tokenizer)
                    self.models.put(key, found)
        return found
