"""LoRA's configuration (every linear layer, one place), the fused loss's switch and plumbing, and
the merge of a QLoRA run into a bf16 model."""
import json
import zipfile

import pytest
import torch

from finetune.errors import FinetuneError
from finetune.fused import (causal_lm_loss, fused_loss_problem, output_layer, plain_cross_entropy, use_fused_loss)
from finetune.lora import ALL_LINEAR, LoraSettings, lora_config
from finetune.train import TrainSettings, train


def gpt2(n_layer=2):
    from transformers import GPT2Config, GPT2LMHeadModel
    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(vocab_size=200, n_embd=32, n_layer=n_layer, n_head=2, n_positions=64,
                                      bos_token_id=1, eos_token_id=2, resid_pdrop=0, embd_pdrop=0, attn_pdrop=0))


def test_lora_config_is_all_linear_by_default_and_follows_the_layer_kind():
    from transformers import LlamaConfig, LlamaForCausalLM
    config = lora_config(LoraSettings(), gpt2())
    assert config.target_modules == ALL_LINEAR and config.fan_in_fan_out  # GPT-2's Conv1D
    llama = LlamaForCausalLM(LlamaConfig(vocab_size=100, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                         intermediate_size=64))
    narrow = lora_config(LoraSettings(targets=[" q_proj", "v_proj", ""]), llama)
    assert set(narrow.target_modules) == {"q_proj", "v_proj"} and not narrow.fan_in_fan_out
    assert LoraSettings(targets=["", " "]).targets is None


# ---------------------------------------------------------------------------------------------
# Fused loss

def test_fused_loss_switch(monkeypatch):
    import finetune.fused as fused
    assert not use_fused_loss("auto", "cpu", "gpt2")
    assert not use_fused_loss("off", "cuda", "gpt2")
    with pytest.raises(FinetuneError, match="CUDA GPU"):
        use_fused_loss("on", "cpu", "gpt2")
    monkeypatch.setattr(fused, "liger_available", lambda: False)
    assert not use_fused_loss("auto", "cuda", "llama")
    with pytest.raises(FinetuneError, match="liger-kernel"):
        use_fused_loss("on", "cuda", "llama")
    monkeypatch.setattr(fused, "liger_available", lambda: True)
    assert use_fused_loss("auto", "cuda", "llama") and use_fused_loss("on", "cuda", "gpt_neox")
    assert not use_fused_loss("auto", "cuda", "gemma2")  # its logits are soft-capped: not just the output layer
    assert "gemma2" in fused_loss_problem("cuda", "gemma2")
    with pytest.raises(ValueError, match="fused loss"):
        use_fused_loss("maybe", "cuda", "gpt2")


def test_fused_loss_on_a_cpu_is_one_line_and_exit_code_2(tiny_model, unseen_text, tmp_path, capsys):
    from finetune.cli import main
    code = main(["train", "--model", tiny_model, "--data", str(unseen_text), "--out", str(tmp_path / "r"),
                 "--fused-loss", "on", "--device", "cpu", "--max-steps", "1"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "CUDA GPU" in err


@pytest.mark.parametrize("num_items", [None, 37])
def test_the_fused_path_computes_transformers_own_loss_and_gradients(num_items):
    """Through the plain stand-in for liger's kernel: the output layer handing back hidden states,
    the shift, the ignored labels and the reduction give exactly the model's loss."""
    from peft import get_peft_model
    model = get_peft_model(gpt2(), lora_config(LoraSettings(dropout=0.0), gpt2()))
    ids = torch.randint(4, 200, (3, 16))
    labels = ids.clone()
    labels[0, :5] = -100
    kwargs = {} if num_items is None else {"num_items_in_batch": torch.tensor(num_items)}
    reference = model(input_ids=ids, labels=labels, **kwargs).loss
    reference.backward()
    expected = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    model.zero_grad()
    head = output_layer(model)
    fused, outputs = causal_lm_loss(model, head, ids, labels, num_items, plain_cross_entropy)
    fused.backward()
    assert fused.item() == pytest.approx(reference.item(), rel=1e-5)
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert torch.allclose(p.grad, expected[name], atol=1e-6), name
    assert outputs.logits.shape[-1] == 32  # hidden states came out, not logits
    assert model(input_ids=ids).logits.shape[-1] == 200  # and the output layer is itself again


def test_training_with_the_fused_path_matches_training_without(tiny_model, unseen_text, tmp_path, monkeypatch):
    import finetune.fused as fused
    import finetune.train as train_module

    def run(out, fused_on: bool):
        settings = TrainSettings(model=tiny_model, data=[str(unseen_text)], out=str(out), max_steps=4, block_size=64,
                                 batch_size=4, micro_batch_size=2, device="cpu", precision="fp32", dropout=0.0,
                                 seed=0, eval_steps=100, fused_loss="on" if fused_on else "off")
        return train(settings)

    plain = run(tmp_path / "plain", False)
    monkeypatch.setattr(train_module, "use_fused_loss", lambda request, device, model_type: request == "on")
    monkeypatch.setattr(fused, "liger_cross_entropy", plain_cross_entropy)
    fused_run = run(tmp_path / "fused", True)
    assert fused_run["fused_loss"] and not plain["fused_loss"] and fused_run["grad_accum_steps"] == 2
    assert fused_run["final_train_loss"] == pytest.approx(plain["final_train_loss"], abs=1e-4)
    assert fused_run["heldout_loss_after"] == pytest.approx(plain["heldout_loss_after"], abs=1e-4)


# ---------------------------------------------------------------------------------------------
# QLoRA's merge: the base reloaded in bf16, never the 4-bit weights

def test_merging_a_qlora_run_gives_a_bf16_model(tiny_model, unseen_text, tmp_path):
    """A QLoRA output folder is a LoRA adapter whose training_config says qlora (bitsandbytes needs a
    GPU, so the adapter is trained here as plain LoRA): export --merge writes a bf16 model that
    computes what the adapter on the bf16 base computes."""
    from peft import PeftModel
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM
    from finetune.cli import main
    out = tmp_path / "run"
    train(TrainSettings(model=tiny_model, data=[str(unseen_text)], out=str(out), method="lora", max_steps=3,
                        block_size=64, batch_size=4, lr=1e-2, device="cpu", eval_steps=100))
    config_file = out / "training_config.json"
    config = json.loads(config_file.read_text(encoding="utf-8"))
    config_file.write_text(json.dumps({**config, "method": "qlora"}), encoding="utf-8")
    assert main(["export", "--model", str(out), "--out", str(tmp_path / "merged.zip"), "--merge"]) == 0
    zipfile.ZipFile(tmp_path / "merged.zip").extractall(tmp_path)
    merged_dir = tmp_path / "merged"
    with safe_open(str(merged_dir / "model.safetensors"), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.bfloat16}
    assert not (merged_dir / "adapter_config.json").exists() and (merged_dir / "spiece.model").is_file()
    merged = AutoModelForCausalLM.from_pretrained(str(merged_dir))
    assert merged.dtype == torch.bfloat16
    base = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.bfloat16)
    adapted = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.bfloat16),
                                        str(out)).eval()
    base = base.eval()
    ids = torch.randint(4, 1000, (1, 24))
    with torch.no_grad():
        expected, got = adapted(input_ids=ids).logits.float(), merged.eval()(input_ids=ids).logits.float()
        untrained = base(input_ids=ids).logits.float()
    # the merged model computes the adapted one up to bf16 rounding, and the adapter did change the base
    assert (expected - got).abs().max() < 0.1 < (expected - untrained).abs().max()


def test_the_qlora_flow_with_the_4_bit_loader_stood_in_for(tiny_model, unseen_text, tmp_path, monkeypatch):
    """bitsandbytes needs a GPU; with its loader replaced by a plain one, the rest of a qlora run
    (peft's preparation for k-bit training, LoRA on every linear layer, the adapter saved) runs here."""
    import finetune.train as train_module
    from finetune.models import load_model
    calls = []

    def loader(source, device, dtype=None, quantized=False):
        calls.append(quantized)
        return load_model(source, device, dtype)

    monkeypatch.setattr(train_module, "qlora_problem", lambda device: None)
    monkeypatch.setattr(train_module, "load_model", loader)
    out = tmp_path / "run"
    metrics = train(TrainSettings(model=tiny_model, data=[str(unseen_text)], out=str(out), method="qlora",
                                  max_steps=3, block_size=64, batch_size=4, lr=1e-2, device="cpu", eval_steps=100))
    assert calls == [True] and metrics["method"] == "qlora"
    assert metrics["heldout_loss_after"] < metrics["heldout_loss_before"]
    assert (out / "adapter_model.safetensors").is_file() and not (out / "model.safetensors").exists()
    assert json.loads((out / "training_config.json").read_text(encoding="utf-8"))["method"] == "qlora"


def test_loss_difference_compares_like_with_like():
    """The GPU check's comparison (with liger there); here with the plain stand-in, in a model that has dropout."""
    from transformers import GPT2Config, GPT2LMHeadModel
    from finetune.fused import loss_difference
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=200, n_embd=32, n_layer=2, n_head=2, n_positions=64)).train()
    reference, fused = loss_difference(model, torch.randint(4, 200, (2, 32)), plain_cross_entropy, torch.bfloat16)
    assert abs(reference - fused) <= 1e-3 and model.training
