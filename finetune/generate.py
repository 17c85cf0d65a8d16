"""Text generation: sampling controls, streaming, and reproducible seeds."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

import torch

from .tokens import encode_prompt

# torch's CPU random generator is process-wide: two generations at once would interleave their
# random draws and break "same seed, same text", so sampling takes this lock.
SAMPLING_LOCK = threading.Lock()


@dataclass
class GenerationSettings:
    max_new_tokens: int = field(default=80, metadata={"help": "tokens to generate after the prompt"})
    temperature: float = field(default=0.8, metadata={"help": "randomness; 0 = always the most likely token"})
    top_p: float = field(default=0.95, metadata={"help": "nucleus sampling: keep the smallest set with this probability"})
    top_k: int = field(default=50, metadata={"help": "keep only the k most likely tokens; 0 = no limit"})
    repetition_penalty: float = field(default=1.1, metadata={"help": "> 1 discourages repeating tokens"})
    seed: int = field(default=0, metadata={"help": "same seed, same model, same prompt = same text"})

    def __post_init__(self):
        if not 1 <= self.max_new_tokens <= 2048:
            raise ValueError(f"max new tokens must be between 1 and 2048, got {self.max_new_tokens}")
        if not 0 <= self.temperature <= 5:
            raise ValueError(f"temperature must be between 0 and 5, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top-p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"top-k must be 0 or more, got {self.top_k}")
        if not 0.5 <= self.repetition_penalty <= 3:
            raise ValueError(f"repetition penalty must be between 0.5 and 3, got {self.repetition_penalty}")


def room_for(model, prompt_length: int, wanted: int) -> int:
    """New tokens that fit in the model's context after the prompt (GPT-2 cannot read past
    n_positions); at least 1, or the prompt itself is refused as too long."""
    context = getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", None)
    if context is None:
        return wanted
    if prompt_length >= context:
        raise ValueError(f"the prompt is {prompt_length} tokens; this model reads at most {context}")
    return min(wanted, context - prompt_length)


def generate_kwargs(model, tokenizer, settings: GenerationSettings, prompt_length: int) -> dict:
    """Arguments for `model.generate` (greedy when temperature is 0)."""
    sample = settings.temperature > 0
    kwargs = dict(max_new_tokens=room_for(model, prompt_length, settings.max_new_tokens), do_sample=sample,
                  repetition_penalty=settings.repetition_penalty,
                  pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    if sample:
        kwargs.update(temperature=settings.temperature, top_p=settings.top_p, top_k=settings.top_k)
    else:
        kwargs.update(temperature=None, top_p=None, top_k=None)
    return kwargs


def prompt_tensor(model, tokenizer, prompt: str) -> torch.Tensor:
    device = next(model.parameters()).device
    return torch.tensor([encode_prompt(tokenizer, prompt)], device=device)


def stream(model, tokenizer, prompt: str, settings: GenerationSettings | None = None):
    """Yield the continuation of `prompt` piece by piece as it is generated. Closing the generator
    early (a Stop button, a closed page) stops the generation at the next token, releasing the
    sampling lock for other users."""
    from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer
    settings = settings or GenerationSettings()
    input_ids = prompt_tensor(model, tokenizer, prompt)
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    abandoned = threading.Event()
    errors: list[BaseException] = []

    class WhenAbandoned(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            return abandoned.is_set()

    def run():
        with SAMPLING_LOCK, torch.no_grad():
            torch.manual_seed(settings.seed)
            try:
                model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                               streamer=streamer, stopping_criteria=StoppingCriteriaList([WhenAbandoned()]),
                               **generate_kwargs(model, tokenizer, settings, input_ids.shape[1]))
            except BaseException as err:  # re-raised in the caller's thread below
                errors.append(err)
                streamer.end()

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    try:
        yield from streamer
    finally:
        abandoned.set()
        worker.join()
    if errors:
        raise errors[0]


def generate(model, tokenizer, prompt: str, settings: GenerationSettings | None = None) -> str:
    """The whole continuation of `prompt` (without the prompt itself)."""
    settings = settings or GenerationSettings()
    input_ids = prompt_tensor(model, tokenizer, prompt)
    with SAMPLING_LOCK, torch.no_grad():
        torch.manual_seed(settings.seed)
        output = model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                                **generate_kwargs(model, tokenizer, settings, input_ids.shape[1]))
    return tokenizer.decode(output[0, input_ids.shape[1]:], skip_special_tokens=True)
