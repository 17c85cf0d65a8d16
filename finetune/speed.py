"""Per-device training defaults: how many tokens an optimizer step takes, whether to compile, and the
learning rate that goes with the step size. Also the model-FLOPs arithmetic behind the MFU figure.

The choices, measured with `python -m finetune bench` (README, "速度"):
- CPU: the seed recipe's 8 blocks of 128 tokens. A CPU is busy at that size already; longer blocks
  only add attention work, and torch.compile gained nothing here while costing a minute to compile.
- GPU: blocks as long as the model allows (1024 for GPT-2) and up to 64 of them per step, because an
  H100 needs that much work per step to be more than a few percent busy; torch.compile for runs long
  enough to repay its compile time. Small data gets smaller steps, so that a run still takes
  MIN_STEPS optimizer steps: a fine-tune of a few hundred articles must not end after five steps.
- Bigger models: fewer tokens per optimizer step on a GPU (64k up to 800M parameters, halved for
  every 4x more: 16k for a 3.6B model), because each step costs more and fine-tunes of billion-
  parameter models are usually run at 8-32k tokens a step.

Memory fitting: `memory_plan` splits the blocks of an optimizer step into micro-batches that fit the
device's free memory (gradient accumulation keeps the tokens per step), and turns on gradient
checkpointing only when not even one block fits without it. `training_bytes` is the estimate it
uses: weights, gradients and Adam state of the trainable weights, and per token the activations the
backward pass keeps. The per-layer counts were measured on CPU with torch's saved-tensor hooks for
GPT-2, GPT-NeoX and Llama blocks in fp32, under bf16 autocast and with bf16 weights (LoRA); the
formula stays within about 0-20% above what those hooks saw, and `ACTIVATION_SLACK` covers the
temporaries of the backward pass. An estimate that is still too small is caught by train.py, which
halves the micro-batch after an out-of-memory error in the first steps.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

CPU_BLOCK = 128           # the seed recipe's block; the studio's default too
CPU_BATCH = 8             # the seed recipe's (TrainingArguments') per-device batch
GPU_BLOCK = 1024          # GPT-2's context; capped by the model's own
GPU_TOKENS_PER_STEP = 64 * 1024  # 64 x 1024 tokens: where the H100 bench stopped gaining
MIN_STEPS = 100           # smaller steps rather than a run of fewer optimizer steps than this
COMPILE_MIN_TOKENS = 20_000_000  # below this, compiling (~1 min) costs more than it saves on an H100
REFERENCE_TOKENS_PER_STEP = CPU_BLOCK * CPU_BATCH  # the step size the default learning rates are for
MAX_LR_SCALE = 8.0        # sqrt(64): never more than 8x the default learning rate
SMALL_MODEL = 200_000_000  # models up to 4x this (rinna's medium, 336M) get the full GPU step
MIN_GPU_TOKENS_PER_STEP = 8 * 1024  # the smallest automatic GPU step, for models of 13B and more


def default_block_size(device: str, max_positions: int, estimated_tokens: int | None = None) -> int:
    """Tokens per block: 128 on CPU; on GPU the model's context (up to 1024) when the text holds at
    least 64 such blocks, else 128."""
    if device != "cuda":
        return min(CPU_BLOCK, max_positions)
    long = min(GPU_BLOCK, max_positions)
    if estimated_tokens is not None and estimated_tokens < 64 * long:
        return min(CPU_BLOCK, max_positions)
    return long


def gpu_tokens_per_step(parameters: int) -> int:
    """Tokens per optimizer step on a GPU for a model of this many parameters: GPU_TOKENS_PER_STEP up
    to 4 x SMALL_MODEL, halved for every 4x more, never below MIN_GPU_TOKENS_PER_STEP."""
    tokens, size = GPU_TOKENS_PER_STEP, 4 * SMALL_MODEL
    while parameters >= size and tokens > MIN_GPU_TOKENS_PER_STEP:
        tokens, size = tokens // 2, size * 4
    return tokens


def default_batch_size(device: str, block_size: int, train_blocks: int, epochs: float, max_steps: int,
                       parameters: int = 0) -> int:
    """Blocks per step: 8 on CPU. On GPU, up to `gpu_tokens_per_step(parameters)` tokens, a power of
    two, but small enough that the run takes at least MIN_STEPS steps (a fixed --max-steps run gets
    the full size)."""
    if device != "cuda":
        return CPU_BATCH
    most = max(1, gpu_tokens_per_step(parameters) // block_size)
    most = 2 ** int(math.log2(most))
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


# ---------------------------------------------------------------------------------------------
# Memory fitting

# The backward pass's temporaries (gradients of the layer being worked on) over the saved activations.
ACTIVATION_SLACK = 1.15
# Per vocabulary entry and token with transformers' loss: half-precision logits, their fp32 copy and
# log-softmax, and their gradients.
LOGIT_BYTES = 12
# Of the device's free memory: allocator fragmentation on a GPU, other programs on a CPU.
USABLE_SHARE = {"cuda": 0.85, "cpu": 0.8}
ADAM_BYTES = 12           # per trainable fp32 weight: its gradient (4) and Adam's two moments (8)
# On a CPU a micro-batch beyond a few hundred tokens adds no speed (the seed recipe's 8 x 128 keeps two cores
# busy), so activations are held to this much: LoRA on a 336M model (rinna's medium) in fp32 then peaks under
# 8 GB RSS, leaving room on a 16 GB CPU Space for the studio beside it (scripts/memory_check.py).
CPU_ACTIVATION_CAP = 4 * 2**30
CHECKPOINTING = ("auto", "on", "off")


@dataclass(frozen=True)
class ModelFootprint:
    """The numbers the memory estimate needs about a model as it will be trained."""
    weight_bytes: int          # every weight as loaded (fp32, bf16, 4-bit), trainable ones included
    trainable: int             # weights the optimizer updates (fp32)
    hidden: int
    layers: int
    vocab: int
    intermediate: int
    heads: int
    # intermediate-sized tensors an MLP keeps: 2 (GELU), 4 (gated, Llama), 5 (GPT-2's tanh GELU in separate ops)
    mlp_activations: int = 2
    norm_upcast: bool = False  # RMSNorm (Llama) keeps an fp32 copy of its input
    activation_bytes: int = 2  # 2 under bf16/fp16 autocast, 4 in fp32
    residual_bytes: int = 4    # hidden states between layers: fp32 when the weights are (or norms are upcast, QLoRA)
    adapter_inputs: int = 0    # per layer, input features of the LoRA layers
    adapter_input_bytes: int = 0  # what a LoRA layer keeps per input feature (lora.adapter_input_bytes)
    attention_dropout: bool = False  # attention with dropout on a CPU keeps the whole attention matrix
    half_copies: bool = False  # autocast keeps half-precision copies of trainable fp32 weights (bf16/fp16)


@dataclass(frozen=True)
class MemoryPlan:
    """How an optimizer step of `micro_batch x grad_accum` blocks is run, and what it should use."""
    micro_batch: int
    grad_accum: int
    checkpointing: bool
    estimated_bytes: int | None   # None when nothing could be estimated
    budget_bytes: int | None      # None when the free memory is unknown

    @property
    def fits(self) -> bool:
        return self.budget_bytes is None or self.estimated_bytes is None or self.estimated_bytes <= self.budget_bytes


def layer_bytes_per_token(fp: ModelFootprint, block: int, device: str) -> float:
    """Bytes one transformer layer keeps per token for the backward pass."""
    a, h = fp.activation_bytes, fp.hidden
    per_layer = a * (10 * h + fp.mlp_activations * fp.intermediate)  # q, k, v, attention, norms, MLP
    if fp.residual_bytes > a:
        # fp32 hidden states under autocast: the norms run in fp32, and each linear layer reading a
        # norm's output keeps its own half-precision copy (q, k, v, gate and up: five in Llama)
        readers = 5 if fp.mlp_activations == 4 else 2
        per_layer += a * (4 + readers) * h + 4 * 2 * h
    if fp.norm_upcast:
        per_layer += 4 * 2 * h
    per_layer += fp.adapter_input_bytes * fp.adapter_inputs
    if fp.attention_dropout and device == "cpu":
        per_layer += 12 * fp.heads * block  # probabilities, mask and dropped probabilities of every head
    return per_layer


def activation_bytes_per_token(fp: ModelFootprint, block: int, device: str, checkpointing: bool,
                               fused_loss: bool = False) -> float:
    """Bytes per token of a micro-batch: the layers' saved activations (with checkpointing, only each
    layer's input plus one layer being recomputed) and the output layer's logits."""
    layer = layer_bytes_per_token(fp, block, device)
    layers = fp.layers * fp.residual_bytes * fp.hidden + layer if checkpointing else fp.layers * layer
    logits = 0 if fused_loss else fp.vocab * LOGIT_BYTES  # a fused loss never holds the logits of a whole batch
    return ACTIVATION_SLACK * (layers + logits)


def fixed_bytes(fp: ModelFootprint) -> int:
    """Memory that does not grow with the batch: weights, gradients, optimizer state."""
    half_copies = 2 * fp.trainable if fp.half_copies else 0
    return fp.weight_bytes + ADAM_BYTES * fp.trainable + half_copies


def training_bytes(fp: ModelFootprint, micro_batch: int, block: int, device: str, checkpointing: bool,
                   fused_loss: bool = False) -> int:
    """Estimated peak memory of training with `micro_batch` blocks of `block` tokens per forward pass."""
    per_token = activation_bytes_per_token(fp, block, device, checkpointing, fused_loss)
    return int(fixed_bytes(fp) + micro_batch * block * per_token)


def divisors(n: int) -> list[int]:
    """The divisors of n, largest first: micro-batch sizes that split a step exactly."""
    return [d for d in range(n, 0, -1) if n % d == 0]


def memory_plan(fp: ModelFootprint | None, block: int, blocks_per_step: int, budget: int | None, device: str,
                checkpointing: str = "auto", micro_batch: int = 0, grad_accum: int = 0,
                fused_loss: bool = False, activation_cap: int | None = None) -> MemoryPlan:
    """The micro-batch, gradient accumulation and checkpointing for a step of `blocks_per_step`
    blocks within `budget` bytes (and, when given, at most `activation_cap` bytes beyond the fixed
    weights and optimizer state). Automatic: the largest micro-batch that divides the step and fits
    without checkpointing; checkpointing ("auto") only when not even one block fits without it.
    A given `micro_batch` or `grad_accum` is kept (checkpointing "auto" still turns on if needed).
    When nothing fits, the smallest setting is returned with `fits` False."""
    choices = {"auto": (False, True), "on": (True,), "off": (False,)}[checkpointing]
    if fp is not None and budget is not None and activation_cap is not None:
        budget = min(budget, fixed_bytes(fp) + activation_cap)

    def plan(micro: int, ckpt: bool) -> MemoryPlan:
        accum = grad_accum or math.ceil(blocks_per_step / micro)
        estimate = training_bytes(fp, micro, block, device, ckpt, fused_loss) if fp else None
        return MemoryPlan(micro, accum, ckpt, estimate, budget)

    if micro_batch or grad_accum:
        micro = micro_batch or math.ceil(blocks_per_step / grad_accum)
        tried = [plan(micro, ckpt) for ckpt in choices]
        return next((p for p in tried if p.fits), tried[-1])
    for ckpt in choices:
        for micro in divisors(blocks_per_step):
            candidate = plan(micro, ckpt)
            if candidate.fits:
                return candidate
    return plan(1, choices[-1])


def smaller_plan(plan: MemoryPlan, fp: ModelFootprint | None, block: int, blocks_per_step: int, device: str,
                 checkpointing: str = "auto", fused_loss: bool = False) -> MemoryPlan | None:
    """The next setting to try after `plan` ran out of memory: the largest micro-batch dividing the
    step that is at most half of it; at one block, checkpointing (when "auto"); else None."""
    smaller = [d for d in divisors(blocks_per_step) if d <= plan.micro_batch // 2]
    if smaller:
        micro, ckpt = smaller[0], plan.checkpointing
    elif checkpointing == "auto" and not plan.checkpointing:
        micro, ckpt = plan.micro_batch, True
    else:
        return None
    estimate = training_bytes(fp, micro, block, device, ckpt, fused_loss) if fp else None
    return MemoryPlan(micro, blocks_per_step // micro, ckpt, estimate, plan.budget_bytes)


def available_ram() -> int | None:
    """Bytes of memory the system can give a program now (MemAvailable, which counts reclaimable
    caches), or None where it cannot be read."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import psutil
    except ImportError:
        return None
    return int(psutil.virtual_memory().available)


def free_device_memory(device: str) -> tuple[int | None, int]:
    """(bytes free for this process, bytes it already holds) on `device`. A GPU's free memory is
    also capped by torch.cuda.set_per_process_memory_fraction, so a run can be fitted to a
    smaller GPU than the one it runs on."""
    if device != "cuda":
        return available_ram(), 0
    import torch
    free, total = torch.cuda.mem_get_info()
    held = torch.cuda.memory_reserved()
    fraction = getattr(torch.cuda, "get_per_process_memory_fraction", None)
    if fraction is not None:
        free = min(free, max(0, int(fraction() * total) - held))
    return free, held


def memory_budget(device: str, resident_bytes: int = 0) -> int | None:
    """Bytes a training run may plan for on `device`: a share (USABLE_SHARE) of what is free plus
    what the run already holds there (its loaded weights: `resident_bytes` on a CPU, the bytes
    torch has reserved on a GPU); None when the free memory is unknown."""
    free, held = free_device_memory(device)
    if free is None:
        return None
    return int(USABLE_SHARE.get(device, 0.8) * (free + max(held, resident_bytes)))


def peak_memory_mb(device: str) -> float:
    """Peak memory of this process: the most torch has allocated on the GPU, or on a CPU the peak
    resident set size (which includes Python and the libraries)."""
    if device == "cuda":
        import torch
        return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    import resource
    import sys
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (2**20 if sys.platform == "darwin" else 1024), 1)  # bytes on macOS, KiB on Linux
