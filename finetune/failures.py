"""Training failures for lack of memory, told in words that say what to do.

How the libraries report them (checked with torch 2.13): CUDA: torch.OutOfMemoryError. CPU: a
RuntimeError "DefaultCPUAllocator: can't allocate memory". Python: MemoryError.
"""
from __future__ import annotations

from .errors import OutOfMemory

MEMORY_WORDS = ("out of memory", "can't allocate memory", "cannot allocate memory", "not enough memory",
                "failed to allocate", "alloc_failed")


def is_out_of_memory(err: BaseException) -> bool:
    """Did an allocation fail (GPU or CPU)?"""
    import torch
    if isinstance(err, (torch.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(err, RuntimeError) and any(word in str(err).lower() for word in MEMORY_WORDS)


def out_of_memory_error(s, cuda: bool) -> OutOfMemory:
    """The error to show for an allocation failure, naming the settings that use the memory."""
    where = "on the GPU" if cuda else "in CPU memory"
    advice = f"lower the batch size (now {s.batch_size}) or the block size (now {s.block_size} tokens)"
    if s.method == "full":
        advice += ", or switch to LoRA (--method lora), which needs far less memory for optimizer state"
    return OutOfMemory(f"out of memory {where} while training: {advice}")


def explained(err: Exception, s) -> Exception:
    """`err`, or the OutOfMemory error that says what to do about it."""
    import torch
    if is_out_of_memory(err):
        return out_of_memory_error(s, cuda=isinstance(err, torch.OutOfMemoryError) or "cuda" in str(err).lower())
    return err
