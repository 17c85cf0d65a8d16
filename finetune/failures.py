"""Training failures for lack of memory or disk, told in words that say what to do, and the clean-up
of saves that a failure cut short.

How the libraries report them (checked with torch 2.13, safetensors 0.8 and a full tmpfs):
  memory  CUDA: torch.OutOfMemoryError. CPU: a RuntimeError "DefaultCPUAllocator: can't allocate
          memory". Python: MemoryError.
  disk    Python: OSError with errno ENOSPC (or EDQUOT, a quota). safetensors: SafetensorError "…
          No space left on device (os error 28)". torch.save: a RuntimeError from its zip writer
          ("[enforce fail at inline_container.cc] … unexpected pos …") that has lost the errno; it
          counts as a full disk when the disk it wrote to has almost no space left.
A checkpoint is complete once Trainer has written its trainer_state.json (the last file it writes);
a folder without a readable one was cut short and is never resumed from.
"""
from __future__ import annotations

import errno
import json
import re
import shutil
from pathlib import Path

from .errors import DiskFull, OutOfMemory

STAGING = ".saving"                 # train.save_result writes the final model here first
CHECKPOINTS = "checkpoints"
STATE_FILE = "trainer_state.json"
MEMORY_WORDS = ("out of memory", "can't allocate memory", "cannot allocate memory", "not enough memory",
                "failed to allocate", "alloc_failed")
DISK_WORDS = ("no space left on device", "disk quota exceeded", "os error 28")
TORCH_WRITER_WORDS = ("inline_container", "pytorchstreamwriter")
NEARLY_FULL = 64 << 20              # bytes free below which a failed torch.save is put down to the disk


def is_out_of_memory(err: BaseException) -> bool:
    """Did an allocation fail (GPU or CPU)?"""
    import torch
    if isinstance(err, (torch.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(err, RuntimeError) and any(word in str(err).lower() for word in MEMORY_WORDS)


def is_disk_full(err: BaseException, out: Path) -> bool:
    """Did writing under `out` fail because its disk (or quota) is full?"""
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(err).lower()
    if any(word in text for word in DISK_WORDS):
        return True
    return any(word in text for word in TORCH_WRITER_WORDS) and free_bytes(out) < NEARLY_FULL


def free_bytes(folder: Path) -> int:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return 0


def out_of_memory_error(s, cuda: bool) -> OutOfMemory:
    """The error to show for an allocation failure, naming the settings that use the memory. By the
    time it is shown, an automatic micro-batch has already been halved down to what the message says."""
    where = "on the GPU" if cuda else "in CPU memory"
    micro = getattr(s, "micro_batch_size", 0)
    tried = ""
    if micro:
        checkpointing = " with gradient checkpointing" if getattr(s, "gradient_checkpointing", "") == "on" else ""
        tried = f" (micro-batch of {micro} block{'s' if micro > 1 else ''}{checkpointing})"
    advice = f"lower the batch size (now {s.batch_size}) or the block size (now {s.block_size} tokens)"
    if s.method == "full":
        advice += ", or switch to LoRA (--method lora), which needs far less memory for optimizer state"
    elif s.method == "lora" and cuda:
        advice += ", or use QLoRA (--method qlora), which keeps the base model in 4 bits"
    return OutOfMemory(f"out of memory {where} while training{tried}: {advice}")


def disk_full_error(out: Path, cut_short: list[str]) -> DiskFull:
    """The error to show when a save hit a full disk; says which checkpoint is left to resume from."""
    what = ", ".join(cut_short) or f"to {out}"
    kept = complete_checkpoints(out / CHECKPOINTS)
    if not kept:
        return DiskFull(f"disk full while saving {what} (the half-written files were removed); no checkpoint "
                        f"was complete yet, so free space and start the run again")
    return DiskFull(f"disk full while saving {what} (the half-written files were removed); the previous "
                    f"checkpoint in {kept[-1]} is intact; free space and run with --resume "
                    f"(python -m finetune train --resume {out})")


def explained(err: Exception, s, out: Path, cut_short: list[str]) -> Exception:
    """`err`, or the OutOfMemory / DiskFull error that says what to do about it."""
    import torch
    if is_out_of_memory(err):
        return out_of_memory_error(s, cuda=isinstance(err, torch.OutOfMemoryError) or "cuda" in str(err).lower())
    if is_disk_full(err, out):
        return disk_full_error(out, cut_short)
    return err


def checkpoint_step(folder: Path) -> int:
    found = re.fullmatch(r"checkpoint-(\d+)", folder.name)
    return int(found.group(1)) if found else -1


def is_complete(checkpoint: Path) -> bool:
    """Was this checkpoint written to the end (its trainer_state.json reads back)?"""
    try:
        json.loads((checkpoint / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return True


def checkpoint_folders(folder: Path) -> list[Path]:
    """checkpoint-N folders under `folder`, oldest step first."""
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and checkpoint_step(p) >= 0]
    return sorted(found, key=checkpoint_step)


def complete_checkpoints(folder: Path) -> list[Path]:
    """The checkpoints under `folder` that can be resumed from, oldest first."""
    return [p for p in checkpoint_folders(folder) if is_complete(p)]


def discard_partial_saves(out: Path) -> list[str]:
    """Remove what a failed save left half-written in `out`: the final model's staging folder and
    incomplete checkpoints. Complete checkpoints and the files already in `out` stay. Returns what
    was removed, as words for a message."""
    removed = []
    if (out / STAGING).exists():
        shutil.rmtree(out / STAGING, ignore_errors=True)
        removed.append("the final model")
    for checkpoint in checkpoint_folders(out / CHECKPOINTS):
        if not is_complete(checkpoint):
            shutil.rmtree(checkpoint, ignore_errors=True)
            removed.append(checkpoint.name)
    return removed
