"""Which device to train on, and which number format is fast there."""
from __future__ import annotations

import torch

from .errors import FinetuneError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str = "auto") -> str:
    """'auto' means CUDA when a GPU is visible, else CPU. Asking for CUDA without one is an error."""
    if name not in DEVICES:
        raise FinetuneError(f"unknown device {name!r}: choose one of {', '.join(DEVICES)}")
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise FinetuneError("--device cuda was asked for, but no CUDA GPU is visible (use --device cpu)")
    return name


def cpu_has_fast_bf16() -> bool:
    """True on CPUs with AMX or AVX512-BF16, where bf16 matmuls beat fp32 (checked via /proc/cpuinfo
    on Linux; elsewhere assume not)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = f.read()
    except OSError:
        return False
    return any(flag in flags for flag in ("amx_bf16", "avx512_bf16"))


def fast_precision(device: str) -> str:
    """The fastest number format that trains reliably on `device`: bf16 autocast where the hardware
    has it, fp16 on older GPUs, else fp32."""
    if device == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_has_fast_bf16() else "fp32"


def describe_devices() -> str:
    """One line for the UI and `--help`: what this machine offers."""
    if torch.cuda.is_available():
        return f"CUDA: {torch.cuda.get_device_name(0)}"
    bf16 = "bf16 fast" if cpu_has_fast_bf16() else "fp32"
    return f"CPU only ({torch.get_num_threads()} threads, {bf16})"
