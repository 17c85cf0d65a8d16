"""Memory fitting (finetune/speed.py, finetune/train.py): the estimate against what models really keep
for the backward pass, the automatic micro-batch / accumulation / checkpointing for big and small
models and devices, tokens per step by model size, and the retry after an out-of-memory error."""
import json

import pytest
import torch
from transformers import Trainer

from finetune.errors import OutOfMemory
from finetune.speed import (ModelFootprint, default_batch_size, divisors, gpu_tokens_per_step, layer_bytes_per_token,
                            memory_budget, memory_plan, smaller_plan, training_bytes)
from finetune.train import TrainSettings, model_footprint, resolved, train

GB = 2**30


def neox_3_6b(method: str = "lora", lora_dropout: float = 0.05) -> ModelFootprint:
    """rinna/japanese-gpt-neox-3.6b's shape: hidden 2816, 36 layers, 22 heads, MLP 11264, vocab 32000,
    untied input and output embeddings. LoRA r=8 on every linear layer of the blocks; the frozen
    base in bf16. Full: fp32 weights under bf16 autocast."""
    h, inner, layers, vocab = 2816, 11264, 36, 32000
    per_layer = 4 * h * h + 2 * h * inner + 9 * h + inner  # qkv + dense + MLP, biases, two norms
    parameters = layers * per_layer + 2 * vocab * h + 2 * h
    assert 3.5e9 < parameters < 3.7e9
    linears = [(h, 3 * h), (h, h), (h, inner), (inner, h)]  # (in, out) of every adapted layer
    if method == "full":
        return ModelFootprint(weight_bytes=4 * parameters, trainable=parameters, hidden=h, layers=layers, vocab=vocab,
                              intermediate=inner, heads=22, residual_bytes=4, half_copies=True)
    lora = layers * sum(8 * (i + o) for i, o in linears)
    return ModelFootprint(weight_bytes=2 * parameters + 4 * lora, trainable=lora, hidden=h, layers=layers, vocab=vocab,
                          intermediate=inner, heads=22, residual_bytes=2, adapter_inputs=sum(i for i, _ in linears),
                          adapter_input_bytes=6 if lora_dropout else 3, half_copies=True)


def xsmall(precision_bytes: int = 4) -> ModelFootprint:
    """rinna/japanese-gpt2-xsmall (37M parameters, fp32 weights) for a full fine-tune."""
    parameters = 6 * (4 * 512 * 512 + 2 * 512 * 2304) + 32000 * 512 + 1024 * 512
    return ModelFootprint(weight_bytes=4 * parameters, trainable=parameters, hidden=512, layers=6, vocab=32000,
                          intermediate=2304, heads=8, mlp_activations=5, activation_bytes=precision_bytes,
                          residual_bytes=4, attention_dropout=True)


def test_3_6b_lora_on_a_16_gb_gpu_checkpoints_and_stays_under_14_gb():
    budget = int(0.85 * 15 * GB)  # what memory_budget makes of a T4's ~15 GiB free
    plan = memory_plan(neox_3_6b(), 1024, 16, budget, "cuda")
    assert plan.fits and plan.checkpointing
    assert plan.micro_batch * plan.grad_accum == 16 and plan.micro_batch >= 2
    assert plan.estimated_bytes <= 14 * GB
    without = training_bytes(neox_3_6b(), 1, 1024, "cuda", checkpointing=False)
    assert without > budget  # not even one block fits without checkpointing: that is why it is on


def test_3_6b_lora_on_an_h200_uses_big_micro_batches_without_checkpointing():
    plan = memory_plan(neox_3_6b(), 1024, 16, int(0.85 * 139 * GB), "cuda")
    assert plan.fits and not plan.checkpointing and plan.micro_batch >= 8
    assert plan.micro_batch * plan.grad_accum == 16
    fused = memory_plan(neox_3_6b(lora_dropout=0), 1024, 16, int(0.85 * 139 * GB), "cuda", fused_loss=True)
    assert fused.micro_batch == 16 and fused.grad_accum == 1


def test_a_3_6b_full_fine_tune_does_not_fit_16_gb_and_says_so():
    plan = memory_plan(neox_3_6b("full"), 1024, 16, int(0.85 * 15 * GB), "cuda")
    assert not plan.fits and plan.micro_batch == 1 and plan.checkpointing
    assert plan.estimated_bytes > 16 * 3.6e9  # fp32 weights, gradients and Adam alone are 16 bytes a weight


def test_xsmall_on_a_cpu_keeps_the_seed_recipes_batch_in_one_pass():
    plan = memory_plan(xsmall(), 128, 8, int(0.8 * 16 * GB), "cpu")
    assert (plan.micro_batch, plan.grad_accum, plan.checkpointing) == (8, 1, False)
    assert 0.5 * GB < plan.estimated_bytes < 2 * GB
    small = memory_plan(xsmall(), 128, 8, 700 * 2**20, "cpu")  # a machine with little left
    assert small.fits and small.micro_batch < 8 and small.micro_batch * small.grad_accum == 8


def medium_lora(precision_bytes: int) -> ModelFootprint:
    """rinna/japanese-gpt2-medium (336M) with LoRA r=8 on every linear layer, LoRA dropout on."""
    parameters, lora = 336_128_000, 3_145_728
    return ModelFootprint(weight_bytes=precision_bytes * parameters + 4 * lora, trainable=lora, hidden=1024,
                          layers=24, vocab=32000, intermediate=4096, heads=16, mlp_activations=5,
                          activation_bytes=precision_bytes, residual_bytes=precision_bytes, adapter_inputs=7168,
                          adapter_input_bytes=6, attention_dropout=True, half_copies=precision_bytes == 2)


def test_on_a_cpu_activations_are_capped_even_with_memory_to_spare():
    from finetune.speed import CPU_ACTIVATION_CAP, fixed_bytes
    fp32 = memory_plan(medium_lora(4), 128, 8, 20 * GB, "cpu", activation_cap=CPU_ACTIVATION_CAP)
    assert (fp32.micro_batch, fp32.grad_accum, fp32.checkpointing) == (4, 2, False)
    assert fp32.estimated_bytes - fixed_bytes(medium_lora(4)) <= CPU_ACTIVATION_CAP
    assert memory_plan(medium_lora(4), 128, 8, 20 * GB, "cpu").micro_batch == 8  # without the cap
    bf16 = memory_plan(medium_lora(2), 128, 8, 20 * GB, "cpu", activation_cap=CPU_ACTIVATION_CAP)
    assert bf16.micro_batch == 8


def test_checkpointing_off_or_on_is_obeyed_and_given_micro_batches_are_kept():
    budget = int(0.85 * 15 * GB)
    off = memory_plan(neox_3_6b(), 1024, 16, budget, "cuda", checkpointing="off")
    assert not off.checkpointing and not off.fits and off.micro_batch == 1
    on = memory_plan(neox_3_6b(), 1024, 16, int(0.85 * 139 * GB), "cuda", checkpointing="on")
    assert on.checkpointing and on.micro_batch == 16
    given = memory_plan(neox_3_6b(), 1024, 16, budget, "cuda", micro_batch=2)
    assert (given.micro_batch, given.grad_accum, given.checkpointing) == (2, 8, True)
    accum = memory_plan(neox_3_6b(), 1024, 16, None, "cuda", grad_accum=4)
    assert (accum.micro_batch, accum.grad_accum, accum.checkpointing) == (4, 4, False)  # no budget: nothing to fit


def test_retries_halve_the_micro_batch_then_turn_checkpointing_on():
    plan = memory_plan(neox_3_6b(), 1024, 16, int(0.85 * 139 * GB), "cuda", checkpointing="off")
    seen = []
    while plan is not None:
        seen.append((plan.micro_batch, plan.grad_accum, plan.checkpointing))
        plan = smaller_plan(plan, neox_3_6b(), 1024, 16, "cuda", "auto")
    assert seen[-5:] == [(8, 2, False), (4, 4, False), (2, 8, False), (1, 16, False), (1, 16, True)]
    assert smaller_plan(memory_plan(None, 128, 6, None, "cpu", micro_batch=1), None, 128, 6, "cpu", "off") is None
    assert divisors(12) == [12, 6, 4, 3, 2, 1]


def test_tokens_per_step_on_a_gpu_shrink_with_model_size():
    assert gpu_tokens_per_step(37_000_000) == 64 * 1024     # xsmall
    assert gpu_tokens_per_step(336_000_000) == 64 * 1024    # medium
    assert gpu_tokens_per_step(1_300_000_000) == 32 * 1024
    assert gpu_tokens_per_step(3_600_000_000) == 16 * 1024  # japanese-gpt-neox-3.6b
    assert gpu_tokens_per_step(13_000_000_000) == 8 * 1024
    assert gpu_tokens_per_step(70_000_000_000) == 8 * 1024
    assert default_batch_size("cuda", 1024, 10**6, 1, 50, parameters=3_600_000_000) == 16
    assert default_batch_size("cuda", 1024, 10**6, 1, 50) == 64  # size unknown: the small-model step
    assert default_batch_size("cpu", 128, 10**6, 1, 50, parameters=3_600_000_000) == 8


def test_budget_is_a_share_of_free_memory_plus_what_the_run_holds(monkeypatch):
    import finetune.speed as speed
    monkeypatch.setattr(speed, "available_ram", lambda: 10 * GB)
    assert memory_budget("cpu", resident_bytes=2 * GB) == int(0.8 * 12 * GB)
    monkeypatch.setattr(speed, "available_ram", lambda: None)
    assert memory_budget("cpu") is None


# ---------------------------------------------------------------------------------------------
# The per-layer estimate against what the backward pass really keeps (torch's saved-tensor hooks)

def tiny(arch: str, layers: int, dropout: float = 0.0):
    from transformers import (GPT2Config, GPT2LMHeadModel, GPTNeoXConfig, GPTNeoXForCausalLM, LlamaConfig,
                              LlamaForCausalLM)
    torch.manual_seed(0)
    if arch == "gpt2":
        return GPT2LMHeadModel(GPT2Config(vocab_size=300, n_embd=128, n_layer=layers, n_head=4, n_positions=128,
                                          resid_pdrop=dropout, embd_pdrop=dropout, attn_pdrop=dropout,
                                          bos_token_id=1, eos_token_id=2))
    if arch == "gpt_neox":
        return GPTNeoXForCausalLM(GPTNeoXConfig(vocab_size=300, hidden_size=128, num_hidden_layers=layers,
                                                num_attention_heads=4, intermediate_size=512,
                                                max_position_embeddings=128))
    return LlamaForCausalLM(LlamaConfig(vocab_size=300, hidden_size=128, num_hidden_layers=layers,
                                        num_attention_heads=4, num_key_value_heads=4, intermediate_size=384,
                                        max_position_embeddings=128))


def weight_copy(t, params) -> bool:
    """A half-precision copy of a weight that autocast saves (not an activation)."""
    fn = t.grad_fn
    if fn is None or type(fn).__name__ != "ToCopyBackward0":
        return False
    source = fn.next_functions[0][0]
    return getattr(source, "variable", None) is not None and id(source.variable) in params


def saved_bytes_per_token(model, tokens: torch.Tensor, autocast: bool) -> float:
    """Bytes of the tensors autograd keeps for the backward pass (weights and their casts left out)."""
    params = {id(p) for p in model.parameters()}
    storages = {p.untyped_storage().data_ptr() for p in model.parameters()}
    kept = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in storages and not weight_copy(t, params):
            kept[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            model(input_ids=tokens)
    return sum(kept.values()) / tokens.numel()


def prepared(arch: str, layers: int, mode: str, lora_dropout: float | None, dropout: float):
    model = tiny(arch, layers, dropout)
    if mode == "bf16 weights":
        model = model.to(torch.bfloat16)
    if lora_dropout is not None:
        from finetune.lora import LoraSettings, with_lora
        model = with_lora(model, LoraSettings(dropout=lora_dropout))
    return model.train()


@pytest.mark.parametrize("arch,mode,lora_dropout,dropout", [
    ("gpt2", "fp32", None, 0.0), ("gpt2", "autocast", None, 0.0), ("gpt2", "bf16 weights", 0.05, 0.0),
    ("gpt2", "fp32", None, 0.1),
    ("gpt_neox", "fp32", None, 0.0), ("gpt_neox", "autocast", None, 0.0), ("gpt_neox", "bf16 weights", 0.05, 0.0),
    ("llama", "fp32", None, 0.0), ("llama", "autocast", None, 0.0), ("llama", "bf16 weights", 0.05, 0.0),
    ("llama", "bf16 weights", 0.0, 0.0), ("gpt_neox", "fp32", 0.0, 0.0),
])
def test_layer_estimate_covers_what_the_backward_pass_keeps(arch, mode, lora_dropout, dropout):
    tokens = torch.randint(4, 300, (2, 64))
    autocast = mode == "autocast"
    measured = [saved_bytes_per_token(prepared(arch, layers, mode, lora_dropout, dropout), tokens, autocast)
                for layers in (1, 3)]
    per_layer = (measured[1] - measured[0]) / 2
    model = prepared(arch, 3, mode, lora_dropout, dropout)
    footprint = model_footprint(model, "fp32" if mode == "fp32" else "bf16", None)
    estimate = layer_bytes_per_token(footprint, 64, "cpu")
    assert 0.9 * per_layer <= estimate <= 1.3 * per_layer, (estimate, per_layer)


def test_footprint_of_a_live_lora_model():
    from finetune.lora import LoraSettings, with_lora
    model = with_lora(tiny("gpt_neox", 2).to(torch.bfloat16), LoraSettings())
    fp = model_footprint(model, "bf16", None)
    assert fp.trainable == 2 * 8 * ((128 + 384) + (128 + 128) + (128 + 512) + (512 + 128))
    assert fp.adapter_inputs == 128 * 3 + 512 and fp.adapter_input_bytes == 6
    assert fp.residual_bytes == 2 and fp.activation_bytes == 2
    assert fp.weight_bytes == sum(p.numel() * p.element_size() for p in model.parameters())
    assert (fp.hidden, fp.layers, fp.vocab, fp.intermediate, fp.mlp_activations) == (128, 2, 300, 512, 2)


# ---------------------------------------------------------------------------------------------
# Settings and the run

def test_micro_batch_settings_are_validated():
    with pytest.raises(ValueError, match="larger than the batch size"):
        TrainSettings(batch_size=4, micro_batch_size=8)
    with pytest.raises(ValueError, match="give two of the three"):
        TrainSettings(batch_size=8, micro_batch_size=2, grad_accum=3)
    with pytest.raises(ValueError, match="gradient checkpointing"):
        TrainSettings(gradient_checkpointing="sometimes")
    with pytest.raises(ValueError, match="fused loss"):
        TrainSettings(fused_loss="yes")
    with pytest.raises(ValueError, match="micro-batch"):
        TrainSettings(grad_accum=-1)


def dataset_of(blocks: int, block: int = 16):
    from finetune.data import Dataset
    data = torch.zeros(blocks, block, dtype=torch.long)
    return Dataset(train_blocks=data, heldout_blocks=data[:1], documents=1, characters=0, train_tokens=data.numel(),
                   heldout_tokens=block, dropped_tokens=0, heldout_documents=[], block_size=block)


def test_resolved_settings_split_the_step_without_changing_its_size():
    from finetune.train import Fit
    three_blocks = training_bytes(xsmall(), 3, 16, "cpu", checkpointing=False)
    tight = Fit(parameters=37_000_000, footprint=xsmall(), budget=three_blocks)
    s = resolved(TrainSettings(batch_size=8, max_steps=5), "cpu", dataset_of(100), tight)
    assert (s.batch_size, s.micro_batch_size, s.grad_accum) == (8, 2, 4)  # 2 is the largest divisor of 8 that fits
    assert s.gradient_checkpointing == "off" and s.fused_loss == "off"
    given = resolved(TrainSettings(micro_batch_size=3, grad_accum=2, max_steps=5), "cpu", dataset_of(100))
    assert (given.batch_size, given.micro_batch_size, given.grad_accum) == (6, 3, 2)


def run_settings(tiny_model, unseen_text, out, **overrides) -> TrainSettings:
    return TrainSettings(**{**dict(model=tiny_model, data=[str(unseen_text)], out=str(out), max_steps=3,
                                   block_size=64, batch_size=8, device="cpu", seed=0, save_steps=100,
                                   eval_steps=100), **overrides})


def events(out) -> list[dict]:
    return [json.loads(line) for line in (out / "progress.jsonl").read_text(encoding="utf-8").splitlines()]


def fails_above(monkeypatch, largest: int, error=lambda: torch.OutOfMemoryError("CUDA out of memory. Tried to "
                                                                                "allocate 2.00 GiB")):
    """Make every training step with more than `largest` blocks run out of memory."""
    real = Trainer.training_step
    seen = []

    def step(self, model, inputs, *args, **kwargs):
        seen.append(inputs["input_ids"].shape[0])
        if inputs["input_ids"].shape[0] > largest:
            raise error()
        return real(self, model, inputs, *args, **kwargs)

    monkeypatch.setattr(Trainer, "training_step", step)
    return seen


def test_out_of_memory_in_the_first_steps_halves_the_micro_batch_and_says_so(tiny_model, unseen_text, tmp_path,
                                                                              monkeypatch, capsys):
    from finetune.cli import main
    seen = fails_above(monkeypatch, 2)
    out = tmp_path / "run"
    code = main(["train", "--model", tiny_model, "--data", str(unseen_text), "--out", str(out), "--max-steps", "3",
                 "--block-size", "64", "--batch-size", "8", "--device", "cpu", "--eval-steps", "100"])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert (metrics["micro_batch_size"], metrics["grad_accum_steps"], metrics["batch_size"]) == (2, 4, 8)
    assert metrics["memory_retries"] == 2 and metrics["steps"] == 3 and metrics["tokens_per_step"] == 8 * 64
    assert seen[:3] == [8, 4, 2] and set(seen[2:]) == {2}
    memory = [e for e in events(out) if e["event"] == "memory"]
    assert [e["micro_batch_size"] for e in memory] == [4, 2]
    assert "out of memory with a micro-batch of 8 blocks" in memory[0]["message"]
    stderr = capsys.readouterr().err
    assert "memory: out of memory with a micro-batch of 8 blocks of 64 tokens; trying again with 4 x 2" in stderr
    assert "micro-batch 8 x 1 accumulation" in stderr  # the automatic plan, before the retries
    config = json.loads((out / "training_config.json").read_text(encoding="utf-8"))
    assert config["micro_batch_size"] == 2 and config["grad_accum"] == 4  # a resume uses what worked


def test_checkpointing_is_the_last_resort_before_giving_up(tiny_model, unseen_text, tmp_path, monkeypatch):
    real = Trainer.training_step

    def step(self, model, inputs, *args, **kwargs):
        if not model.is_activation_checkpointing:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return real(self, model, inputs, *args, **kwargs)

    monkeypatch.setattr(Trainer, "training_step", step)
    metrics = train(run_settings(tiny_model, unseen_text, tmp_path, batch_size=4))
    assert metrics["gradient_checkpointing"] and metrics["micro_batch_size"] == 1 and metrics["memory_retries"] == 3
    assert metrics["heldout_loss_after"] < metrics["heldout_loss_before"]


def test_a_micro_batch_set_by_hand_is_not_retried(tiny_model, unseen_text, tmp_path, monkeypatch):
    fails_above(monkeypatch, 2)
    with pytest.raises(OutOfMemory) as err:
        train(run_settings(tiny_model, unseen_text, tmp_path, micro_batch_size=4))
    assert "micro-batch of 4 blocks" in str(err.value) and "batch size (now 8)" in str(err.value)
    assert not [e for e in events(tmp_path) if e["event"] == "memory"]


def test_out_of_memory_later_in_a_run_is_not_retried(tiny_model, unseen_text, tmp_path, monkeypatch):
    from finetune.train import RETRY_STEPS
    real = Trainer.training_step
    calls = []

    def step(self, model, inputs, *args, **kwargs):
        calls.append(1)
        if len(calls) > RETRY_STEPS:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return real(self, model, inputs, *args, **kwargs)

    monkeypatch.setattr(Trainer, "training_step", step)
    with pytest.raises(OutOfMemory):
        train(run_settings(tiny_model, unseen_text, tmp_path, max_steps=RETRY_STEPS + 2, batch_size=2))
    assert len(calls) == RETRY_STEPS + 1  # no second attempt


def test_metrics_report_memory_and_trainable_parameters(tiny_model, unseen_text, tmp_path):
    metrics = train(run_settings(tiny_model, unseen_text, tmp_path, method="lora", max_steps=2))
    for key in ("micro_batch_size", "grad_accum_steps", "gradient_checkpointing", "peak_memory_mb",
                "trainable_parameters"):
        assert key in metrics, key
    assert metrics["peak_memory_mb"] > 100  # the CPU's peak RSS: Python, torch and the model at least
    assert 0 < metrics["trainable_parameters"] < metrics["total_parameters"] / 10
    assert metrics["gradient_checkpointing"] is False and metrics["micro_batch_size"] == 8
    start = next(e for e in events(tmp_path) if e["event"] == "start")
    assert start["trainable_parameters"] == metrics["trainable_parameters"] and start["memory_budget_mb"] > 0


def test_a_gpu_capped_by_the_memory_fraction_is_planned_as_the_smaller_gpu(monkeypatch):
    """torch.cuda.set_per_process_memory_fraction makes an H200 look like a 16 GB GPU to the plan
    (scripts/gpu_check.sh fits runs to smaller GPUs that way)."""
    import finetune.speed as speed
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda: (130 * GB, 139 * GB))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda: 8 * GB)  # the loaded weights
    monkeypatch.setattr(torch.cuda, "get_per_process_memory_fraction", lambda: 16 / 139)
    assert speed.free_device_memory("cuda") == (8 * GB, 8 * GB)
    assert memory_budget("cuda") == int(0.85 * 16 * GB)
    monkeypatch.setattr(torch.cuda, "get_per_process_memory_fraction", lambda: 1.0)
    assert memory_budget("cuda") == int(0.85 * 138 * GB)


def test_when_nothing_fits_the_smallest_setting_is_tried_and_the_log_says_so(tiny_model, unseen_text, tmp_path,
                                                                             monkeypatch):
    import finetune.train as train_module
    monkeypatch.setattr(train_module, "memory_budget", lambda device, resident: 1)  # no memory free at all
    metrics = train(run_settings(tiny_model, unseen_text, tmp_path, max_steps=2, batch_size=4))
    assert (metrics["micro_batch_size"], metrics["grad_accum_steps"], metrics["gradient_checkpointing"]) == (1, 4, True)
    warning = [e for e in events(tmp_path) if e["event"] == "memory"]
    assert len(warning) == 1 and "trying anyway" in warning[0]["message"] and metrics["steps"] == 2
