"""Per-device defaults and the FLOPs arithmetic behind the MFU figure (finetune/speed.py)."""
import pytest

from finetune.bench import plot_rows, write_plot, xsmall_config
from finetune.speed import (COMPILE_MIN_TOKENS, MIN_STEPS, SEED_BATCH, default_batch_size, default_block_size,
                            flops_per_token, mfu, peak_flops, scaled_lr, should_compile)


def test_cpu_keeps_the_seed_recipes_step_shape():
    assert default_block_size("cpu", 1024) == 128
    assert default_block_size("cpu", 64) == 64  # never beyond the model's context
    assert default_batch_size("cpu", 128, train_blocks=10**6, epochs=3, max_steps=-1) == 8


def test_gpu_uses_long_blocks_only_when_the_text_fills_them():
    assert default_block_size("cuda", 1024, estimated_tokens=10**7) == 1024
    assert default_block_size("cuda", 512, estimated_tokens=10**7) == 512
    assert default_block_size("cuda", 1024, estimated_tokens=20_000) == 128


@pytest.mark.parametrize("blocks,epochs", [(100, 3), (1_000, 3), (50_000, 1), (10**6, 2), (7, 1)])
def test_gpu_batch_keeps_at_least_min_steps_and_a_64k_token_cap(blocks, epochs):
    batch = default_batch_size("cuda", 1024, train_blocks=blocks, epochs=epochs, max_steps=-1)
    assert 1 <= batch <= 64 and batch & (batch - 1) == 0  # a power of two
    steps = blocks * epochs // batch
    assert steps >= MIN_STEPS or batch == SEED_BATCH  # never fewer blocks than the seed recipe's 8
    assert default_batch_size("cuda", 1024, train_blocks=blocks, epochs=epochs, max_steps=50) == 64


def test_default_learning_rate_grows_with_the_square_root_of_the_step():
    assert scaled_lr(5e-5, 1024) == pytest.approx(5e-5)
    assert scaled_lr(5e-5, 256) == pytest.approx(5e-5)  # never scaled down
    assert scaled_lr(5e-5, 4 * 1024) == pytest.approx(1e-4)
    assert scaled_lr(5e-5, 64 * 1024) == pytest.approx(4e-4)
    assert scaled_lr(5e-5, 1024 * 1024) == pytest.approx(4e-4)  # capped at 8x


def test_compile_auto_only_for_long_gpu_runs(monkeypatch):
    import finetune.devices
    monkeypatch.setattr(finetune.devices, "cpu_has_fast_bf16", lambda: False)  # AMX CPUs: tests/test_bench.py
    assert should_compile("auto", "cuda", COMPILE_MIN_TOKENS)
    assert not should_compile("auto", "cuda", COMPILE_MIN_TOKENS - 1)
    assert not should_compile("auto", "cpu", 10**12)
    assert should_compile("on", "cpu", 0) and not should_compile("off", "cuda", 10**12)


def test_flops_per_token_match_what_torch_counts_in_a_training_step():
    """The formula against torch's own FLOP counter over a real forward and backward pass (an
    independent count: every matmul the step runs), on a small GPT-2 with a non-default MLP width."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import GPT2Config, GPT2LMHeadModel
    config = GPT2Config(vocab_size=1000, n_positions=128, n_embd=64, n_layer=2, n_head=4, n_inner=96,
                        bos_token_id=1, eos_token_id=2)
    model = GPT2LMHeadModel(config)
    ids = torch.randint(0, 1000, (2, 128))
    with FlopCounterMode(display=False) as counter:
        model(input_ids=ids, labels=ids).loss.backward()
    assert flops_per_token(config, 128) == counter.get_total_flops() / ids.numel()


def test_flops_per_token_of_the_xsmall_architecture():
    """The figure the README's MFU rests on, pinned (the formula itself is checked just above)."""
    from transformers import GPT2LMHeadModel
    parameters = sum(p.numel() for p in GPT2LMHeadModel(xsmall_config()).parameters())
    assert 37e6 < parameters < 38e6  # the "37M parameters" model
    assert flops_per_token(xsmall_config(), 1024) == 258_736_128


def test_mfu_uses_the_gpus_bf16_peak():
    assert peak_flops("NVIDIA H100 80GB HBM3") == 989e12
    assert peak_flops("NVIDIA H100 PCIe") == 756e12
    assert peak_flops("CPU") is None
    per_token = flops_per_token(xsmall_config(), 1024)
    assert mfu(989e12 / per_token * 0.3, xsmall_config(), 1024, "NVIDIA H100 80GB HBM3") == pytest.approx(0.3)
    assert mfu(1e6, xsmall_config(), 1024, "Some CPU") is None


def test_plot_has_a_bar_per_training_figure(tmp_path):
    results = [
        {"figure": "seed_recipe", "tokens_per_second": 1000.0},
        {"figure": "engine", "tokens_per_second": 500000.0, "precision": "bf16", "batch_size": 64,
         "block_size": 1024, "compiled": True},
        {"figure": "ratio", "device_name": "NVIDIA H100 80GB HBM3"},
        {"figure": "lever", "setting": "bf16 64x1024 eager", "tokens_per_second": 250000.0},
        {"figure": "generation", "tokens_per_second": 80.0},
    ]
    assert [label for label, _ in plot_rows(results)] == [
        "seed recipe fp32 8x128", "engine (large corpus): bf16 64x1024 compiled", "bf16 64x1024 eager"]
    path = tmp_path / "plot.svg"
    write_plot(str(path), results)
    svg = path.read_text()
    assert svg.count("<rect") == 3 and "500,000" in svg and "H100" in svg


def test_a_step_never_holds_more_blocks_than_the_data_has():
    import torch
    from finetune.data import Dataset
    from finetune.train import TrainSettings, resolved
    blocks = torch.zeros(5, 16, dtype=torch.long)
    data = Dataset(train_blocks=blocks, heldout_blocks=blocks[:1], documents=1, characters=0, train_tokens=80,
                   heldout_tokens=16, dropped_tokens=0, heldout_documents=[], block_size=16)
    settings = resolved(TrainSettings(batch_size=4096, max_steps=2), "cpu", data)
    assert settings.batch_size == 5 and settings.block_size == 16
    assert resolved(TrainSettings(), "cpu", data).batch_size == 5  # the CPU default 8, capped


class Clock:
    """A clock the test moves by hand."""

    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_step_clock_leaves_out_the_warm_up_steps():
    from finetune.train import StepClock
    clock = Clock()
    steps = StepClock(now=clock)
    for step, seconds in enumerate([2.0, 2.0, 0.01, 0.01, 0.01, 0.01], start=1):
        steps.step_begins("cpu")
        clock.now += seconds
        steps.step_ends("cpu", sync=step % 2 == 0)
    # steps 3-6 took 10 ms each; the two slow warm-up steps (compilation, say) are not counted
    assert steps.steps == 4 and steps.seconds == pytest.approx(0.04)
    assert steps.steps_per_second == pytest.approx(100)


def test_step_clock_of_a_short_run_uses_its_warm_up_steps():
    from finetune.train import StepClock
    clock = Clock()
    steps = StepClock(now=clock)
    steps.step_begins("cpu")
    clock.now += 0.05
    steps.step_ends("cpu", sync=True)
    assert steps.steps == 0 and steps.steps_per_second == pytest.approx(20)


def test_step_clock_counts_every_step_of_a_window_closed_late():
    """Steps between two synced points are timed as one window: time spent in logging points
    outside a window (evaluation, checkpoints) is not counted."""
    from finetune.train import StepClock
    clock = Clock()
    steps = StepClock(now=clock)
    for step in range(1, 9):
        steps.step_begins("cpu")
        clock.now += 0.5
        steps.step_ends("cpu", sync=step % 3 == 0)
        if step % 3 == 0:
            clock.now += 100.0  # a held-out evaluation between windows
    assert steps.steps == 4 and steps.steps_per_second == pytest.approx(2)  # steps 3-6: a window of 1, then one of 3
