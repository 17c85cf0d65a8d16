"""Training that runs out of memory: a clear error naming what to do, and the error logged."""
import json
from pathlib import Path

import pytest
import torch
from transformers import Trainer

from finetune.errors import OutOfMemory
from finetune.train import TrainSettings, train


def settings(tiny_model, unseen_text, out, **overrides) -> TrainSettings:
    return TrainSettings(**{**dict(model=tiny_model, data=[str(unseen_text)], out=str(out), max_steps=8,
                                   block_size=64, batch_size=8, device="cpu", seed=0, save_steps=4,
                                   eval_steps=100), **overrides})


def events(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "progress.jsonl").read_text(encoding="utf-8").splitlines()]


def cpu_allocation_failure():
    """The CPU allocator's own error: far more memory than any machine has."""
    torch.empty(1 << 50, dtype=torch.uint8)


def cuda_out_of_memory():
    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")


def python_out_of_memory():
    raise MemoryError()


@pytest.mark.parametrize("fail", [cpu_allocation_failure, cuda_out_of_memory, python_out_of_memory])
def test_out_of_memory_in_a_training_step_names_the_settings_to_lower(fail, tiny_model, unseen_text, tmp_path,
                                                                      monkeypatch):
    def step(self, *args, **kwargs):
        fail()

    monkeypatch.setattr(Trainer, "training_step", step)
    with pytest.raises(OutOfMemory) as err:
        train(settings(tiny_model, unseen_text, tmp_path))
    message = str(err.value)
    assert "batch size (now 8)" in message and "block size (now 64 tokens)" in message and "LoRA" in message
    assert ("GPU" in message) == (fail is cuda_out_of_memory)
    assert err.value.__cause__ is not None  # the original error stays attached for the server log
    last = events(tmp_path)[-1]
    assert last["event"] == "error" and last["kind"] == "OutOfMemory" and last["message"] == message


def test_lora_runs_are_not_told_to_switch_to_lora(tiny_model, unseen_text, tmp_path, monkeypatch):
    monkeypatch.setattr(Trainer, "training_step", lambda self, *a, **k: cuda_out_of_memory())
    with pytest.raises(OutOfMemory) as err:
        train(settings(tiny_model, unseen_text, tmp_path, method="lora"))
    assert "batch size" in str(err.value) and "LoRA" not in str(err.value)


def test_other_runtime_errors_are_not_called_out_of_memory(tiny_model, unseen_text, tmp_path, monkeypatch):
    def step(self, *args, **kwargs):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    monkeypatch.setattr(Trainer, "training_step", step)
    with pytest.raises(RuntimeError, match="shapes"):
        train(settings(tiny_model, unseen_text, tmp_path))
    assert events(tmp_path)[-1]["kind"] == "RuntimeError"

