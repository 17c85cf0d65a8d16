"""Held-out loss and perplexity: the numbers that say whether training helped."""
from __future__ import annotations

import math

import torch


@torch.no_grad()
def heldout_loss(model, blocks: torch.Tensor, batch_size: int = 8, labels: torch.Tensor | None = None) -> float:
    """Mean next-token cross-entropy over every predicted token of `blocks` (token-weighted, so the
    result does not depend on the batch size). `labels` may mask tokens with -100."""
    if len(blocks) == 0:
        return float("nan")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for i in range(0, len(blocks), batch_size):
        inputs = blocks[i:i + batch_size].to(device)
        targets = (labels[i:i + batch_size] if labels is not None else blocks[i:i + batch_size]).to(device)
        logits = model(input_ids=inputs).logits[:, :-1].float()
        shifted = targets[:, 1:]
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.size(-1)), shifted.reshape(-1), ignore_index=-100, reduction="sum")
        total += loss.item()
        count += int((shifted != -100).sum())
    model.train(was_training)
    return total / max(count, 1)


def perplexity(loss: float) -> float:
    """exp(loss), capped so that a diverged model reports a huge number rather than inf."""
    return math.exp(min(loss, 50.0)) if not math.isnan(loss) else float("nan")
