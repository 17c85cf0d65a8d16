"""Find and load a causal language model: a Hub id, a local folder, or a LoRA output folder.

Loading never hangs on an unreachable Hub: a Hub id that is not in the local cache is only fetched
after a quick reachability check, and otherwise fails with a message naming the offline model.

Which weights are loaded (pickle files can run code when they are unpickled carelessly):
  - safetensors whenever a model has them (transformers prefers them; this engine writes nothing else);
  - pickle checkpoints (pytorch_model.bin, adapter_model.bin) only through torch's weights_only
    unpickler, which rebuilds tensors and refuses any other object, so loading them cannot run code.
    transformers 5.24 and peft already default to it; load_model passes weights_only=True itself so
    that no default can change it, and a refused pickle becomes ModelNotAvailable;
  - a shared front end (ModelPolicy.check_weights, the studio) opens safetensors only: a folder or
    Hub model with nothing but pickle weights is refused with the reason, except the trusted
    default base (TRUSTED_PICKLE_MODELS). The CLI's user owns the machine and may load .bin files.
Models that need their own Python code are never loaded (trust_remote_code=False everywhere).
"""
from __future__ import annotations

import importlib.util
import json
import os
import pickle
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from .errors import FinetuneError, ModelNotAvailable
from .tokens import Parity, load_tokenizer

DEFAULT_BASE = "rinna/japanese-gpt2-xsmall"
# The model the project trains and ships itself (assets/build_tiny_model.sh), usable offline.
EMBEDDED_MODEL = str(Path(__file__).resolve().parent.parent / "assets" / "tiny-japanese-gpt2")
OFFLINE_HINT = f"use the embedded model instead: --model {EMBEDDED_MODEL}"
SAFE_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "adapter_model.safetensors")
PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "adapter_model.bin")
# Hub models whose pickle weights (if that is all they have) a shared front end still opens, read
# with weights_only=True: the default base, published by rinna and named throughout this project.
TRUSTED_PICKLE_MODELS = (DEFAULT_BASE,)


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
    return can_connect(os.environ.get("HF_ENDPOINT", "https://huggingface.co"), timeout)


def can_connect(endpoint: str, timeout: float) -> bool:
    """Does a TCP connection to the host of this URL open within `timeout` seconds?"""
    url = urlparse(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def is_cached(repo_id: str) -> bool:
    """Is this Hub model in the local cache: its config and its weights? (Loading a tokenizer caches
    config.json alone; the model must then still be downloaded.)"""
    from huggingface_hub import try_to_load_from_cache

    def cached(name: str) -> bool:
        return isinstance(try_to_load_from_cache(repo_id, name), str)
    return cached("config.json") and any(map(cached, SAFE_WEIGHTS[:2] + PICKLE_WEIGHTS[:2]))


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


class QLoRAUnavailable(FinetuneError):
    """QLoRA cannot run here: no CUDA GPU, or bitsandbytes is not installed."""


def qlora_problem(device: str) -> str | None:
    """Why 4-bit QLoRA training cannot run on `device`, or None when it can."""
    if device != "cuda":
        return ("QLoRA (--method qlora) needs a CUDA GPU: bitsandbytes' 4-bit weights do not train on a CPU; "
                "use --method lora there")
    if importlib.util.find_spec("bitsandbytes") is None:
        return ("QLoRA (--method qlora) needs the bitsandbytes package, which is not installed: "
                "pip install -r scripts/requirements-gpu.txt")
    return None


def quantization_config(compute_dtype):
    """4-bit NF4 weights with bf16 (or fp16) matrix math, and 8-bit quantization constants: the
    QLoRA paper's recipe."""
    from transformers import BitsAndBytesConfig
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=compute_dtype,
                              bnb_4bit_use_double_quant=True)


def load_model(source: ModelSource, device: str = "cpu", dtype=None, quantized: bool = False):
    """The model on `device`, in fp32 unless `dtype` says otherwise (a full fine-tune keeps fp32
    master weights and autocast does the fast math; LoRA's frozen base may be bf16). `quantized`:
    the linear layers in 4-bit NF4 on the current GPU with `dtype` as the compute type (QLoRA).
    LoRA folders come back as a PeftModel."""
    import torch
    from transformers import AutoModelForCausalLM
    dtype = dtype or torch.float32
    if quantized:
        problem = qlora_problem(device)
        if problem:
            raise QLoRAUnavailable(problem)
    if source.adapter:
        from peft import PeftModel
        base = load_model(resolve_source(source.base), device, dtype)
        try:
            return PeftModel.from_pretrained(base, source.path).to(device)  # peft: weights_only=True
        except pickle.UnpicklingError as err:
            raise pickle_refused(source) from err
    try:
        # trust_remote_code=False, never left unset: unset, transformers asks on a terminal whether to
        # run the model's own Python code. A model that needs it is refused (ValueError).
        placement = {"quantization_config": quantization_config(dtype),
                     "device_map": {"": torch.cuda.current_device()}} if quantized else {}
        model = AutoModelForCausalLM.from_pretrained(
            source.path, local_files_only=source.local_files_only, dtype=dtype, trust_remote_code=False,
            weights_only=True, **placement)
    except pickle.UnpicklingError as err:
        raise pickle_refused(source) from err
    except (OSError, ValueError) as err:
        raise ModelNotAvailable(f"cannot load model {source.name}: {first_line(err)}") from err
    return model if quantized else model.to(device)  # a 4-bit model is placed while loading and cannot move


def pickle_refused(source: ModelSource) -> ModelNotAvailable:
    return ModelNotAvailable(
        f"cannot load model {source.name}: its pickle weights (.bin) hold objects other than tensors, "
        "so they were not unpickled (that could run code); use a safetensors copy of the model")


def load_tokenizer_for(source: ModelSource) -> tuple[object, Parity]:
    """The (repaired if needed) tokenizer of a model. Adapter folders carry their own copy."""
    try:
        return load_tokenizer(source.path, local_files_only=source.local_files_only)
    except (OSError, ValueError) as err:
        raise ModelNotAvailable(f"cannot load the tokenizer of {source.name}: {first_line(err)}") from err


def is_safe_weights(name: str) -> bool:
    return name.endswith((".safetensors", ".safetensors.index.json"))


def is_pickle_weights(name: str) -> bool:
    """pytorch_model.bin, adapter_model.bin, their shards and index (not training_args.bin: no weights)."""
    return name.startswith(("pytorch_model", "adapter_model")) and name.endswith((".bin", ".bin.index.json"))


def weight_files(name: str) -> set[str] | None:
    """The weight file names of a model folder or Hub model; None when nothing can tell."""
    folder = Path(name).expanduser()
    if folder.is_dir():
        return {p.name for p in folder.iterdir() if is_safe_weights(p.name) or is_pickle_weights(p.name)}
    return hub_weight_files(name)


def hub_weight_files(repo_id: str) -> set[str] | None:
    """A Hub model's weight files: the cached ones when they include safetensors, else the Hub's list
    (when it can be reached), else whatever is cached (None if nothing is)."""
    from huggingface_hub import list_repo_files, try_to_load_from_cache
    from huggingface_hub.errors import HFValidationError
    from httpx2 import HTTPError
    cached = {f for f in SAFE_WEIGHTS + PICKLE_WEIGHTS if isinstance(try_to_load_from_cache(repo_id, f), str)}
    if any(map(is_safe_weights, cached)) or not hub_reachable():
        return cached or None
    try:
        listed = list_repo_files(repo_id)
    except (OSError, HTTPError, HFValidationError):  # no such repo, gated, network: loading will say why
        return cached or None
    return {f for f in listed if is_safe_weights(f) or is_pickle_weights(f)}


def adapter_base(name: str) -> str | None:
    """The base model a LoRA output folder applies to (None for anything else)."""
    config = Path(name.strip()).expanduser() / "adapter_config.json"
    if not config.is_file():
        return None
    return json.loads(config.read_text(encoding="utf-8")).get("base_model_name_or_path")


def first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}(/[A-Za-z0-9][\w.-]{0,95})?$")


@dataclass(frozen=True)
class ModelPolicy:
    """Which model names a shared front end (the studio on a public Space) accepts: Hub ids, and
    folders inside `roots` only, so a visitor cannot make the server read /etc, ~/.ssh or ../.
    URLs are refused, and so are weights that are pickle files only (`check_weights`), Hub models
    over a size limit and gated or private ones the caller cannot read (`check_download`). (The CLI
    has no policy: its user owns the machine.) Models that need their own Python code are refused by
    `load_model` in every case. Folders inside `excluded` are refused even inside a root (the
    visitors' uploads, which sit beside the studio's runs)."""
    roots: tuple[str, ...]
    excluded: tuple[str, ...] = ()
    max_model_gb: float | None = field(default=None, metadata={
        "help": "largest Hub model (GB downloaded) this front end loads; None = STUDIO_MAX_MODEL_GB, "
                "else 2 on a CPU, more on a GPU (finetune.hubmodels.max_model_bytes)"})

    def __post_init__(self):
        if self.max_model_gb is not None and not self.max_model_gb > 0:
            raise ValueError(f"max_model_gb must be above 0 (or None), got {self.max_model_gb!r}")

    def check(self, name: str) -> None:
        """Raise ModelNotAvailable with the reason when `name`, or the base of a LoRA folder, is not allowed."""
        self.check_name(name)
        base = adapter_base(name)
        if base:
            self.check_name(base)

    def check_weights(self, name: str) -> None:
        """Raise ModelNotAvailable when `name` (or the base of a LoRA folder) has pickle weights and
        no safetensors. Call it before a model is loaded, after `check`: for a Hub model that is not
        cached it asks the Hub for the file list. A model whose files nothing can tell is let through
        (loading then explains, and reads any pickle with weights_only=True)."""
        for model in filter(None, (name.strip(), adapter_base(name))):
            files = set() if model in TRUSTED_PICKLE_MODELS else (weight_files(model) or set())
            pickles = sorted(filter(is_pickle_weights, files))
            if pickles and not any(map(is_safe_weights, files)):
                raise ModelNotAvailable(
                    f"{model} has pickle weights only ({', '.join(pickles)}); this app opens safetensors "
                    "only, because unpickling a file can run code. Use a copy saved with save_pretrained "
                    "(which writes model.safetensors), or the command line")

    def check_download(self, name: str, token=None, parts=("model", "tokenizer")):
        """Before a Hub model (`name`, or the Hub base of a LoRA folder) is loaded: raise
        ModelTooLarge when loading `parts` of it would download more than the limit, ModelGated or
        ModelNotFound when `token` cannot read it (a string, False for anonymous, None for this
        machine's own login: see finetune.hubmodels). Nothing is downloaded. Call it on every use,
        not only the first, so a gated model loaded for one caller is not served to another (the
        Hub's answer is reused for a few minutes). Folders pass; so does everything while the Hub is
        offline (nothing can be downloaded then). Returns the Hub model's DownloadPlan, or None."""
        from .hubmodels import GB, check_download
        limit = None if self.max_model_gb is None else int(self.max_model_gb * GB)
        plan = None
        base = adapter_base(name)
        for model, wanted in ((name.strip(), parts), (base, ("model",))):
            if model and not self.looks_like_path(model):
                plan = check_download(model, token, wanted, limit) or plan
        return plan

    def check_name(self, name: str) -> None:
        """Raise ModelNotAvailable with the reason when the name itself is not allowed."""
        name = name.strip()
        if "\x00" in name or "://" in name or name.lower().startswith(("http:", "https:", "file:")):
            raise ModelNotAvailable(f"{name!r}: URLs are not accepted; give a Hub id (owner/name) or a folder")
        if self.looks_like_path(name):
            real = os.path.realpath(os.path.expanduser(name))
            if not any(inside(real, root) for root in self.real_roots()):
                raise ModelNotAvailable(f"{name}: only model folders inside the app's own folders can be opened")
            if any(inside(real, os.path.realpath(folder)) for folder in self.excluded):
                raise ModelNotAvailable(f"{name}: uploaded files are not model folders; train on them, then "
                                        "open the run")
            return
        if not HUB_ID.match(name) or ".." in name:
            raise ModelNotAvailable(f"{name!r} is not a Hub model id (owner/name)")

    @staticmethod
    def looks_like_path(name: str) -> bool:
        return name.startswith(("/", ".", "~", "\\")) or ".." in name or os.path.isdir(name) or name.count("/") > 1

    def real_roots(self) -> list[str]:
        return [os.path.realpath(root) for root in self.roots]


def inside(path: str, folder: str) -> bool:
    """Is the resolved `path` the resolved `folder` or below it?"""
    return path == folder or path.startswith(folder + os.sep)


STUDIO_UPLOADS = "uploads"  # the studio's work-folder subfolder for visitors' files


def studio_policy(work: str | Path, extra_roots: str = "") -> ModelPolicy:
    """The studio's policy: the embedded model's folder, the runs in `work`, and the folders in
    `extra_roots` (os.pathsep-separated, STUDIO_MODEL_ROOTS), but never the uploads in `work`, even
    when an extra root contains them."""
    work = Path(work)
    roots = [str(Path(EMBEDDED_MODEL).parent), str(work / "runs")] + [p for p in extra_roots.split(os.pathsep) if p]
    return ModelPolicy(tuple(roots), excluded=(str(work / STUDIO_UPLOADS),))
