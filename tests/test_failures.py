"""Training that runs out of memory or disk: a clear error naming what to do, the error logged, and
nothing half-written left where a resume or a reader would trust it."""
import errno
import json
from pathlib import Path

import pytest
import torch
from transformers import Trainer

from conftest import assert_trained_model
from finetune.errors import DiskFull, OutOfMemory
from finetune.train import TrainSettings, last_checkpoint, train


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
    # the automatic micro-batch was halved down to one block, then checkpointing tried, before giving up
    assert "(micro-batch of 1 block with gradient checkpointing)" in message
    assert len([e for e in events(tmp_path) if e["event"] == "memory"]) == 4
    assert err.value.__cause__ is not None  # the original error stays attached for the server log
    last = events(tmp_path)[-1]
    assert last["event"] == "error" and last["kind"] == "OutOfMemory" and last["message"] == message


def test_lora_runs_are_not_told_to_switch_to_lora_but_to_qlora_on_a_gpu(tiny_model, unseen_text, tmp_path,
                                                                       monkeypatch):
    monkeypatch.setattr(Trainer, "training_step", lambda self, *a, **k: cuda_out_of_memory())
    with pytest.raises(OutOfMemory) as err:
        train(settings(tiny_model, unseen_text, tmp_path, method="lora"))
    assert "batch size" in str(err.value) and "switch to LoRA" not in str(err.value)
    assert "QLoRA (--method qlora)" in str(err.value)
    monkeypatch.setattr(Trainer, "training_step", lambda self, *a, **k: cpu_allocation_failure())
    with pytest.raises(OutOfMemory) as err:
        train(settings(tiny_model, unseen_text, tmp_path / "cpu", method="lora"))
    assert "LoRA" not in str(err.value)  # QLoRA needs a GPU: no advice to use it in CPU memory


def test_other_runtime_errors_are_not_called_out_of_memory(tiny_model, unseen_text, tmp_path, monkeypatch):
    def step(self, *args, **kwargs):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    monkeypatch.setattr(Trainer, "training_step", step)
    with pytest.raises(RuntimeError, match="shapes"):
        train(settings(tiny_model, unseen_text, tmp_path))
    assert events(tmp_path)[-1]["kind"] == "RuntimeError"


def no_space(path):
    """What a full disk does to a save: part of the file lands, then ENOSPC."""
    Path(path).write_bytes(b"\0" * 1000)
    raise OSError(errno.ENOSPC, "No space left on device", str(path))


def test_disk_full_during_a_checkpoint_keeps_the_previous_one_and_resume_works(tiny_model, unseen_text, tmp_path,
                                                                               monkeypatch):
    real_save = torch.save

    def save(obj, path, *args, **kwargs):
        if "checkpoint-8" in str(path):
            no_space(path)
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    out = tmp_path / "run"
    with pytest.raises(DiskFull) as err:
        train(settings(tiny_model, unseen_text, out))
    message = str(err.value)
    assert "disk full while saving checkpoint-8" in message
    assert f"{out / 'checkpoints' / 'checkpoint-4'} is intact" in message and "--resume" in message
    assert not (out / "checkpoints" / "checkpoint-8").exists()       # the half-written one is gone
    assert last_checkpoint(out).endswith("checkpoint-4")
    assert not (out / "model.safetensors").exists() and not (out / "metrics.json").exists()
    assert events(out)[-1]["kind"] == "DiskFull"

    monkeypatch.undo()  # space freed
    from finetune.train import settings_from_run
    metrics = train(settings_from_run(out))
    assert metrics["steps"] == 8
    resumed = [e for e in events(out) if e["event"] == "resume"]
    assert resumed and resumed[-1]["checkpoint"].endswith("checkpoint-4")
    assert_trained_model(out, tiny_model)


def test_disk_full_during_the_final_save_leaves_the_output_as_it_was(tiny_model, unseen_text, tmp_path,
                                                                     monkeypatch):
    import transformers.modeling_utils as modeling_utils
    real_save_file = modeling_utils.safe_save_file

    def save_file(tensors, filename, *args, **kwargs):
        if ".saving" in str(filename):
            no_space(filename)
        return real_save_file(tensors, filename, *args, **kwargs)

    monkeypatch.setattr(modeling_utils, "safe_save_file", save_file)
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("my notes", encoding="utf-8")
    with pytest.raises(DiskFull) as err:
        train(settings(tiny_model, unseen_text, out))
    assert "disk full while saving the final model" in str(err.value)
    assert "checkpoint-8 is intact" in str(err.value)
    assert not (out / ".saving").exists() and not (out / "model.safetensors").exists()
    assert (out / "notes.txt").read_text(encoding="utf-8") == "my notes"
    assert json.loads((out / "training_config.json").read_text(encoding="utf-8"))["max_steps"] == 8
    assert last_checkpoint(out).endswith("checkpoint-8")

    monkeypatch.undo()
    from finetune.train import settings_from_run
    # Trainer checks max_steps only after a step: resumed at step 8 of 8, it takes one more.
    assert train(settings_from_run(out))["steps"] >= 8
    assert_trained_model(out, tiny_model)


def test_disk_full_before_any_checkpoint_says_to_start_again(tiny_model, unseen_text, tmp_path, monkeypatch):
    monkeypatch.setattr(torch, "save", lambda obj, path, *a, **k: no_space(path))
    with pytest.raises(DiskFull, match="no checkpoint was complete yet"):
        train(settings(tiny_model, unseen_text, tmp_path))
    assert not list((tmp_path / "checkpoints").glob("checkpoint-*"))


def test_a_checkpoint_cut_short_is_never_resumed_from(tmp_path):
    """A kill in the middle of a save leaves a checkpoint folder without its trainer_state.json."""
    from finetune.train import prepare_output
    good, cut = tmp_path / "checkpoints" / "checkpoint-4", tmp_path / "checkpoints" / "checkpoint-8"
    good.mkdir(parents=True)
    cut.mkdir()
    (good / "trainer_state.json").write_text('{"global_step": 4}', encoding="utf-8")
    (cut / "optimizer.pt").write_bytes(b"\0" * 10)
    assert last_checkpoint(tmp_path).endswith("checkpoint-4")
    prepare_output(tmp_path, resume=True)
    assert good.is_dir() and not cut.exists()
