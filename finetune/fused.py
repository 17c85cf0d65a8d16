"""Fused linear cross-entropy: the output layer and the loss computed together, chunk by chunk, so
the logits of a whole micro-batch (tokens x vocabulary, the largest activation of a model with a
32k vocabulary) never exist at once. On an H200, xsmall shape, 64x1024 tokens, liger-kernel's
kernel kept the speed (1.09M vs 1.10M tokens/s) and cut peak memory from 17.0 to 10.4 GB.

liger-kernel is a Triton kernel: CUDA only, an optional import (scripts/requirements-gpu.txt). `--fused-loss`
auto uses it on a GPU where it is installed and the model's logits are nothing but the output layer
applied to the last hidden states (FUSED_MODEL_TYPES); on a CPU it is off.

How it plugs into Trainer: `fused_loss_trainer` makes a Trainer whose compute_loss runs the model
with its output layer handing back its input (the final hidden states), then gives those, the
output layer's weight and the labels to the fused loss. The loss is transformers' own: the mean
over predicted tokens, or with gradient accumulation the sum divided by the tokens of the whole
optimizer step (`num_items_in_batch`), so the two losses agree (checked on a GPU by
`loss_difference`, run from scripts/gpu_check.sh).
"""
from __future__ import annotations

import contextlib
import importlib.util

import torch

from .errors import FinetuneError

FUSED_LOSS_CHOICES = ("auto", "on", "off")
# Architectures whose logits are exactly output_layer(final hidden states): no soft-capping or scaling.
FUSED_MODEL_TYPES = ("gpt2", "gpt_neox", "llama", "mistral", "qwen2", "qwen3")
IGNORE_INDEX = -100  # transformers' label for "not predicted"


def liger_available() -> bool:
    return importlib.util.find_spec("liger_kernel") is not None


def fused_loss_problem(device: str, model_type: str) -> str | None:
    """Why the fused loss cannot be used here, or None when it can."""
    if device != "cuda":
        return "the fused loss (--fused-loss on) needs a CUDA GPU: its kernel is written in Triton"
    if model_type not in FUSED_MODEL_TYPES:
        return f"the fused loss does not support {model_type} models (supported: {', '.join(FUSED_MODEL_TYPES)})"
    if not liger_available():
        return "the fused loss needs the liger-kernel package, which is not installed: pip install -r scripts/requirements-gpu.txt"
    return None


def use_fused_loss(request: str, device: str, model_type: str) -> bool:
    """"off"; "on" (FinetuneError where it cannot run); "auto" = on wherever it can run."""
    if request not in FUSED_LOSS_CHOICES:
        raise ValueError(f"fused loss must be one of {FUSED_LOSS_CHOICES}, got {request!r}")
    if request == "off":
        return False
    problem = fused_loss_problem(device, model_type)
    if problem and request == "on":
        raise FinetuneError(problem)
    return problem is None


def liger_cross_entropy(hidden, weight, targets, bias, reduction: str):
    """liger-kernel's fused output layer + cross-entropy (hidden: tokens x width, targets: tokens)."""
    from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss
    return LigerFusedLinearCrossEntropyLoss(ignore_index=IGNORE_INDEX, reduction=reduction)(weight, hidden, targets, bias)


def plain_cross_entropy(hidden, weight, targets, bias, reduction: str):
    """The same loss unfused (the whole logits at once, in fp32 as transformers computes them): the
    reference the fused one is checked against, and a stand-in where liger cannot run (tests)."""
    logits = torch.nn.functional.linear(hidden, weight, bias).float()
    return torch.nn.functional.cross_entropy(logits, targets, ignore_index=IGNORE_INDEX, reduction=reduction)


@contextlib.contextmanager
def output_layer_passes_through(head):
    """Inside the block, the output layer returns its input: the model's "logits" are its final hidden
    states. Going through the model's own forward keeps data-parallel and compiled wrappers working."""
    head.forward = lambda hidden: hidden
    try:
        yield
    finally:
        del head.forward  # the class's forward again


def causal_lm_loss(model, head, input_ids, labels, num_items_in_batch=None, cross_entropy=liger_cross_entropy):
    """(loss, model outputs) of next-token prediction with the output layer `head` fused into the loss."""
    with output_layer_passes_through(head):
        outputs = model(input_ids=input_ids)
    hidden = outputs.logits[:, :-1]
    targets = labels[:, 1:].to(hidden.device)
    reduction = "mean" if num_items_in_batch is None else "sum"
    loss = cross_entropy(hidden.reshape(-1, hidden.size(-1)), head.weight, targets.reshape(-1), head.bias, reduction)
    if num_items_in_batch is not None:
        loss = loss / num_items_in_batch
    return loss, outputs


def output_layer(model):
    """The output layer (LM head) of a causal LM, through peft, data-parallel and compile wrappers."""
    inner = getattr(model, "module", model)
    inner = getattr(inner, "_orig_mod", inner)
    if hasattr(inner, "get_base_model"):
        inner = inner.get_base_model()
    return inner.get_output_embeddings()


def fused_loss_trainer(cross_entropy=None):
    """A transformers Trainer class whose training loss is `cross_entropy` (default: liger-kernel's)
    fused with the output layer."""
    from transformers import Trainer
    cross_entropy = cross_entropy or liger_cross_entropy

    class FusedLossTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss, outputs = causal_lm_loss(model, output_layer(model), inputs["input_ids"], inputs["labels"],
                                           num_items_in_batch, cross_entropy)
            return (loss, outputs) if return_outputs else loss

    return FusedLossTrainer


def loss_difference(model, input_ids, cross_entropy=liger_cross_entropy, dtype=torch.bfloat16) -> tuple[float, float]:
    """(transformers' loss, fused loss) of `model` on one batch under `dtype` autocast: the check
    that the fused loss changes nothing but memory (scripts/gpu_check.sh)."""
    device = input_ids.device.type
    was_training = model.training
    model.eval()  # no dropout: both losses see the same network
    with torch.no_grad(), torch.autocast(device, dtype=dtype):
        reference = model(input_ids=input_ids, labels=input_ids).loss.item()
        fused, _ = causal_lm_loss(model, output_layer(model), input_ids, input_ids, cross_entropy=cross_entropy)
    model.train(was_training)
    return reference, fused.item()
