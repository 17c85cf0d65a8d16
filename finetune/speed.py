"""Per-device training defaults: how many tokens an optimizer step takes, whether to compile, and the
learning rate that goes with the step size. Also the model-FLOPs arithmetic behind the MFU figure.

The choices, measured with `python -m finetune bench` (README, "速度"):
- CPU: the seed recipe's 8 blocks of 128 tokens. A CPU is busy at that size already; longer blocks
  only add attention work, and torch.compile gained nothing here while costing a minute to compile.
- GPU: blocks as long as the model allows (1024 for GPT-2) and up to 64 of them per step, because an
  H100 needs that much work per step to be more than a few percent busy; torch.compile for runs long
  enough to repay its compile time. Small data gets smaller steps, so that a run still takes
  MIN_STEPS optimizer steps: a fine-tune of a few hundred articles must not end after five steps.
"""
from __future__ import annotations

import math

CPU_BLOCK = 128           # the seed recipe's block; the studio's default too
CPU_BATCH = 8             # the seed recipe's (TrainingArguments') per-device batch
GPU_BLOCK = 1024          # GPT-2's context; capped by the model's own
GPU_TOKENS_PER_STEP = 64 * 1024  # 64 x 1024 tokens: where the H100 bench stopped gaining
MIN_STEPS = 100           # smaller steps rather than a run of fewer optimizer steps than this
COMPILE_MIN_TOKENS = 20_000_000  # below this, compiling (~1 min) costs more than it saves on an H100
REFERENCE_TOKENS_PER_STEP = CPU_BLOCK * CPU_BATCH  # the step size the default learning rates are for
MAX_LR_SCALE = 8.0        # sqrt(64): never more than 8x the default learning rate


def default_block_size(device: str, max_positions: int, estimated_tokens: int | None = None) -> int:
    """Tokens per block: 128 on CPU; on GPU the model's context (up to 1024) when the text holds at
    least 64 such blocks, else 128."""
    if device != "cuda":
        return min(CPU_BLOCK, max_positions)
    long = min(GPU_BLOCK, max_positions)
    if estimated_tokens is not None and estimated_tokens < 64 * long:
        return min(CPU_BLOCK, max_positions)
    return long


def default_batch_size(device: str, block_size: int, train_blocks: int, epochs: float, max_steps: int) -> int:
    """Blocks per step: 8 on CPU. On GPU, up to GPU_TOKENS_PER_STEP tokens, a power of two, but small
    enough that the run takes at least MIN_STEPS steps (a fixed --max-steps run gets the full size)."""
    if device != "cuda":
        return CPU_BATCH
    most = max(1, GPU_TOKENS_PER_STEP // block_size)
    if max_steps > 0:
        return most
    fits = max(1, int(train_blocks * epochs) // MIN_STEPS)
    return min(most, 2 ** int(math.log2(fits)))


def estimated_tokens(characters: int) -> int:
    """A rough token count before tokenizing: Japanese runs about two characters per token with
    rinna's 32k vocabulary (1.7 to 2.2 on the project's corpus); err towards fewer tokens."""
    return characters // 2


def scaled_lr(base: float, tokens_per_step: int) -> float:
    """A default learning rate scaled with the square root of the step size (the usual rule for
    Adam), relative to the 1024-token step the defaults were set for; never scaled down."""
    scale = math.sqrt(tokens_per_step / REFERENCE_TOKENS_PER_STEP)
    return base * min(max(scale, 1.0), MAX_LR_SCALE)


def should_compile(request: str, device: str, planned_tokens: int) -> bool:
    """torch.compile: "on", "off", or "auto" = on a GPU when the run trains COMPILE_MIN_TOKENS or more."""
    if request == "auto":
        return device == "cuda" and planned_tokens >= COMPILE_MIN_TOKENS
    return request == "on"


def flops_per_token(config, block_size: int) -> int:
    """Training FLOPs per token: 6 per weight (forward and backward multiply-adds), counting the tied
    output layer but not position embeddings, plus attention over the block (the PaLM paper's
    appendix formula, as nanoGPT uses it)."""
    width = config.hidden_size
    layers = config.num_hidden_layers
    per_layer = 4 * width * width + 2 * width * intermediate_size(config)  # qkv+out, MLP in+out
    weights = layers * per_layer + config.vocab_size * width
    return 6 * weights + 12 * layers * width * block_size


def intermediate_size(config) -> int:
    inner = getattr(config, "n_inner", None) or getattr(config, "intermediate_size", None)
    return inner or 4 * config.hidden_size


# Dense bf16 tensor-core peaks from the vendors' data sheets (no sparsity), in FLOP/s.
PEAK_BF16 = {"H100 PCIe": 756e12, "H100": 989e12, "H200": 989e12, "A100": 312e12, "L4": 121e12,
             "A10G": 70e12, "T4": 65e12}


def peak_flops(device_name: str) -> float | None:
    """The bf16 peak of a GPU by its name (the first table entry it contains), None if unknown."""
    for key, value in PEAK_BF16.items():
        if key in device_name:
            return value
    return None


def mfu(tokens_per_second: float, config, block_size: int, device_name: str) -> float | None:
    """Model-FLOPs utilisation: the share of the GPU's bf16 peak that the training math uses."""
    peak = peak_flops(device_name)
    if not peak:
        return None
    return tokens_per_second * flops_per_token(config, block_size) / peak
