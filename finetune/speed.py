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
    two, but small enough that the run takes at least MIN_STEPS steps, and never fewer than the
    seed's 8 blocks (a fixed --max-steps run gets the full size)."""
    if device != "cuda":
        return CPU_BATCH
    most = max(1, gpu_tokens_per_step(parameters) // block_size)
    most = 2 ** int(math.log2(most))
    if max_steps > 0:
        return most
    fits = max(1, int(train_blocks * epochs) // MIN_STEPS)
    return min(most, max(SEED_BATCH, 2 ** int(math.log2(fits))))


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
    """torch.compile: "on", "off", or "auto" = on a GPU when the run trains COMPILE_MIN_TOKENS or more,
    on a CPU with fast bf16 (AMX) when it trains CPU_COMPILE_MIN_TOKENS or more."""
    if request == "auto":
        if device == "cuda":
            return planned_tokens >= COMPILE_MIN_TOKENS
        from .devices import cpu_has_fast_bf16
        return planned_tokens >= CPU_COMPILE_MIN_TOKENS and cpu_has_fast_bf16()
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


# ----------------------------------------------------------------------------------------------
# Time to quality (issue #14): defaults that reach the seed recipe's held-out loss sooner, and the
# CPU and small-GPU-step choices behind them. Measured with `python -m finetune bench` (its
# time_to_quality and lever figures; README, "速度").

FULL_LR = 2e-4            # full fine-tune, for an 8x128 step; the seed's 5e-5 moves a pretrained model too
                          # little per pass (article: 2e-4 passed the seed's 3-epoch loss within 1 epoch)
LORA_LR = 2e-4            # LoRA, for an 8x128 step (unchanged)
MAX_FULL_LR = 4e-4        # the scaled full fine-tune rate stops here (what 64x1024 GPU steps had before)
AUTO_EPOCHS = 3           # passes when none are asked for: the seed recipe's 3 ...
LARGE_TEXT_TOKENS = 200_000  # ... and 2 from this many training tokens on (a 1M-character text): at FULL_LR, 2
                          # passes over 150k tokens beat the seed's 3 at 5e-5 (held-out loss 5.407 vs 5.427)
EVAL_SHARE = 0.1          # held-out evaluations during training cost at most this share of its compute
MAX_EVALS = 10            # and never more than this many (the progress plot needs no more points)
GPU_BF16_MIN_TOKENS = 16 * 1024  # smaller GPU steps are launch-bound: autocast's casts cost more than bf16
                          # saves (H200: 8x128 eager bf16 54k tokens/s, the fp32 seed recipe 62k), so they
                          # run in fp32 with TF32 matmuls; to be confirmed by the bench's GPU levers
SEED_BATCH = CPU_BATCH    # GPU steps never hold fewer blocks than the seed's 8: smaller steps are launch-bound,
                          # so more of them cost more time per token (the 0.33x of issue #14 ran 4x128 steps)
CPU_COMPILE_MIN_TOKENS = 2_000_000  # torch.compile on a CPU with fast bf16: ~1 min to compile on 2 cores,
                          # repaid by ~1.3-1.5x faster steps only in runs this long


def default_epochs(train_tokens: int) -> float:
    """Passes over the training blocks when none are asked for (`--epochs 0`)."""
    return float(AUTO_EPOCHS - 1 if train_tokens >= LARGE_TEXT_TOKENS else AUTO_EPOCHS)


def default_lr(method: str, tokens_per_step: int) -> float:
    """The learning rate when none is given: FULL_LR or LORA_LR scaled with the step size
    (`scaled_lr`), a full fine-tune's capped at MAX_FULL_LR."""
    if method == "lora":
        return scaled_lr(LORA_LR, tokens_per_step)
    return min(scaled_lr(FULL_LR, tokens_per_step), MAX_FULL_LR)


def default_eval_interval(total_steps: int, tokens_per_step: int, heldout_tokens: int) -> int:
    """Steps between held-out evaluations: at most MAX_EVALS per run, and no more than keep their
    cost within EVAL_SHARE of training's (a held-out token costs about a third of a training token:
    a forward pass without the backward)."""
    if heldout_tokens <= 0:
        return max(1, total_steps // MAX_EVALS)
    affordable = int(EVAL_SHARE * total_steps * tokens_per_step * 3 / heldout_tokens)
    evals = min(MAX_EVALS, max(1, affordable))
    return max(1, math.ceil(total_steps / evals))


def default_precision(device: str, tokens_per_step: int, fast: str) -> str:
    """The number format for a step of `tokens_per_step` when "auto" was asked: `fast` (the device's
    fast format), except fp32 (TF32 matmuls) for GPU steps under GPU_BF16_MIN_TOKENS."""
    if device == "cuda" and tokens_per_step < GPU_BF16_MIN_TOKENS:
        return "fp32"
    return fast


def default_optimizer(device: str) -> str:
    """Fused AdamW everywhere: one kernel per parameter group instead of a loop of small ops; on
    CPUs since torch 2.4 (what the seed recipe's Trainer picks by default on torch 2.8 and later)."""
    return "adamw_torch_fused"


CGROUP_CPU_MAX = "/sys/fs/cgroup/cpu.max"  # "<quota> <period>" in microseconds, or "max <period>"


def cpu_threads() -> int:
    """CPUs this process may really use: its affinity mask, capped by a cgroup v2 CPU quota. In a
    container (a Space) torch counts the host's cores and would start more threads than the quota
    runs, each waiting on the others at every operation."""
    import os
    count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        with open(CGROUP_CPU_MAX, encoding="utf-8") as f:
            quota, period = f.read().split()[:2]
    except (OSError, ValueError):
        return count
    if quota == "max":
        return count
    return max(1, min(count, int(quota) // int(period)))


def set_cpu_threads() -> int:
    """Cap torch's intra-op threads at cpu_threads() (never raise them); returns the count in use."""
    import torch
    wanted = cpu_threads()
    if torch.get_num_threads() > wanted:
        torch.set_num_threads(wanted)
    return torch.get_num_threads()


# ----------------------------------------------------------------------------------------------
# A cross-entropy that never holds the whole (tokens x vocabulary) logits: on the 32k vocabulary
# they are the largest tensor of a step (8x128 tokens: 131 MB in fp32, 64x1024: 8.4 GB). A bench
# lever (`python -m finetune bench --levers`), not a default: it saves memory, not time, so far.

LOSS_CHUNK_TOKENS = 1024  # rows of logits made at once by the chunked loss


def chunked_linear_cross_entropy(hidden, weight, labels, chunk: int | None = None, divide_by=None):
    """Next-token cross-entropy of `hidden @ weight.T` against `labels` (already shifted, -100 =
    ignored), made chunk by chunk with activation checkpointing: each chunk's logits are made again
    in the backward pass instead of being kept. Mean over the counted tokens, or their sum divided
    by `divide_by` (Trainer's token count across gradient accumulation)."""
    import torch
    from torch.utils.checkpoint import checkpoint

    def chunk_loss(h, y):
        logits = torch.nn.functional.linear(h, weight).float()
        return torch.nn.functional.cross_entropy(logits, y, ignore_index=-100, reduction="sum")

    chunk = chunk or LOSS_CHUNK_TOKENS
    hidden, labels = hidden.reshape(-1, hidden.shape[-1]), labels.reshape(-1)
    total = sum(checkpoint(chunk_loss, hidden[i:i + chunk], labels[i:i + chunk], use_reentrant=False)
                for i in range(0, len(labels), chunk))
    count = divide_by if divide_by is not None else (labels != -100).sum().clamp(min=1)
    return total / count


def liger_linear_cross_entropy(hidden, weight, labels, divide_by=None):
    """The same loss with liger-kernel's fused Triton kernel (CUDA only; `pip install liger-kernel`)."""
    import torch
    from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss
    dtype = torch.get_autocast_dtype("cuda") if torch.is_autocast_enabled("cuda") else weight.dtype
    loss = LigerFusedLinearCrossEntropyLoss(reduction="sum")
    with torch.autocast("cuda", enabled=False):
        total = loss(weight.to(dtype), hidden.reshape(-1, hidden.shape[-1]).to(dtype), labels.reshape(-1))
    count = divide_by if divide_by is not None else (labels != -100).sum().clamp(min=1)
    return total / count


def fused_loss_forward(original, backend: str):
    """A GPT-2-style causal LM forward (`original`, e.g. GPT2LMHeadModel.forward) whose training loss
    comes from the hidden states through `backend` ("chunked" or "liger") without full logits.
    Calls without labels (evaluation, generation) go to `original` unchanged."""
    import torch
    from transformers.modeling_outputs import CausalLMOutputWithCrossAttentions
    loss_of = {"chunked": chunked_linear_cross_entropy, "liger": liger_linear_cross_entropy}[backend]

    @torch.compiler.disable  # a compiled body calls it eagerly (liger's kernels are Triton already)
    def loss_part(hidden, weight, labels, divide_by):
        return loss_of(hidden, weight, labels, divide_by=divide_by)

    def forward(self, input_ids=None, attention_mask=None, labels=None, **kwargs):
        if labels is None:
            return original(self, input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        divide_by = kwargs.pop("num_items_in_batch", None)
        body = self.base_model(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        hidden = body[0][:, :-1]
        loss = loss_part(hidden, self.get_output_embeddings().weight, labels[:, 1:].to(hidden.device), divide_by)
        return CausalLMOutputWithCrossAttentions(loss=loss, logits=None)

    return forward
