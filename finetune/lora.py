"""LoRA settings and the one place a peft LoraConfig is built."""
from __future__ import annotations

from dataclasses import dataclass, field

# Attention projections per architecture (peft's own defaults follow the same idea). Anything
# else gets every linear layer.
DEFAULT_TARGETS = {
    "gpt2": ["c_attn"],
    "gpt_neox": ["query_key_value"],
    "llama": ["q_proj", "v_proj"],
}


@dataclass
class LoraSettings:
    r: int = field(default=8, metadata={"help": "LoRA rank: size of the low-rank update (higher = more capacity)"})
    alpha: int = field(default=16, metadata={"help": "LoRA scaling numerator; the update is scaled by alpha/r"})
    dropout: float = field(default=0.05, metadata={"help": "dropout on the LoRA input during training"})
    targets: list[str] | None = field(default=None, metadata={
        "help": "module names to adapt; default depends on the architecture (c_attn for GPT-2)"})

    def __post_init__(self):
        if self.r < 1:
            raise ValueError(f"LoRA r must be >= 1, got {self.r}")
        if self.alpha < 1:
            raise ValueError(f"LoRA alpha must be >= 1, got {self.alpha}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"LoRA dropout must be in [0, 1), got {self.dropout}")


def target_modules(model_type: str, requested: list[str] | None):
    return requested or DEFAULT_TARGETS.get(model_type, "all-linear")


def lora_config(settings: LoraSettings, model_type: str):
    """The peft LoraConfig for a causal LM of `model_type`."""
    from peft import LoraConfig, TaskType
    return LoraConfig(task_type=TaskType.CAUSAL_LM, r=settings.r, lora_alpha=settings.alpha,
                      lora_dropout=settings.dropout, target_modules=target_modules(model_type, settings.targets),
                      # GPT-2 stores c_attn as a Conv1D with transposed weights
                      fan_in_fan_out=model_type == "gpt2")
