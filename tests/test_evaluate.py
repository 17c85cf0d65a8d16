"""Held-out loss and perplexity, the product's core number, against an independent computation: the
model's own `labels=` loss (transformers' cross-entropy), block by block, weighted by the tokens each
block predicts. Then the same numbers where a user sees them: metrics.json and `finetune eval`."""
import json
import math
import subprocess
import sys

import pytest
from transformers import AutoModelForCausalLM

from conftest import ROOT, reference_loss
from finetune.data import build_dataset, read_documents
from finetune.evaluate import heldout_loss, perplexity
from finetune.models import load_tokenizer_for, resolve_source
from finetune.train import TrainSettings, train

QA = ROOT / "assets" / "samples" / "qa" / "faq.jsonl"


@pytest.fixture(scope="module")
def tiny(tiny_model):
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    tokenizer, _ = load_tokenizer_for(resolve_source(tiny_model))
    return model, tokenizer


def test_heldout_loss_is_the_token_weighted_mean_of_the_models_own_loss(tiny, unseen_text):
    model, tokenizer = tiny
    data = build_dataset(read_documents([str(unseen_text)]), tokenizer, 64, heldout_fraction=0)
    blocks = data.train_blocks[:7]
    expected = reference_loss(model, blocks)
    for batch_size in (1, 3, 8):  # a short last batch, and one batch for all
        assert heldout_loss(model, blocks, batch_size) == pytest.approx(expected, rel=1e-5)
    assert perplexity(expected) == pytest.approx(math.exp(expected))


def test_masked_tokens_are_left_out_and_blocks_weigh_by_what_they_predict(tiny):
    """Q&A blocks mask their prompts with -100: blocks predict different numbers of tokens, so a
    mean of per-batch means (or a count that includes masked tokens) gives another number."""
    model, tokenizer = tiny
    data = build_dataset(read_documents([str(QA)]), tokenizer, 64, heldout_fraction=0)
    blocks, labels = data.train_blocks[:7], data.train_labels[:7]
    predicted = [int((row[1:] != -100).sum()) for row in labels]
    assert len(set(predicted)) > 2 and min(predicted) > 0  # the case that tells the ways apart
    expected = reference_loss(model, blocks, labels)
    for batch_size in (1, 3, 8):
        assert heldout_loss(model, blocks, batch_size, labels) == pytest.approx(expected, rel=1e-5)
    assert abs(expected - reference_loss(model, blocks)) > 0.01  # masking changes the number


@pytest.fixture(scope="module")
def run(tiny_model, unseen_text, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    settings = TrainSettings(model=tiny_model, data=[str(unseen_text)], out=str(out), max_steps=4, block_size=64,
                             batch_size=8, lr=1e-3, device="cpu", precision="fp32", seed=3, eval_steps=100)
    return out, settings, train(settings)


def test_before_and_after_are_the_base_and_the_trained_model_on_the_held_out_blocks(run, tiny):
    """metrics.json's before is the base model and its after the saved result, both measured on the
    run's own held-out blocks (rebuilt here from the text, the block size and the seed)."""
    out, settings, metrics = run
    base, tokenizer = tiny
    data = build_dataset(read_documents(settings.data), tokenizer, 64, settings.heldout, settings.seed)
    assert len(data.heldout_blocks) >= 2 and metrics["heldout_tokens"] == data.heldout_blocks.numel()
    before = reference_loss(base, data.heldout_blocks)
    after = reference_loss(AutoModelForCausalLM.from_pretrained(str(out)), data.heldout_blocks)
    assert metrics["heldout_loss_before"] == pytest.approx(before, rel=1e-5)
    assert metrics["heldout_loss_after"] == pytest.approx(after, rel=1e-5)
    assert after < before - 0.05  # four steps at 1e-3 move it: a reloaded base model would not
    assert metrics["heldout_perplexity_before"] == pytest.approx(math.exp(before), rel=1e-5)
    assert metrics["heldout_perplexity_after"] == pytest.approx(math.exp(after), rel=1e-5)
    assert json.loads((out / "metrics.json").read_text(encoding="utf-8")) == metrics


def test_cli_eval_of_a_trained_folder_matches_the_reference(run, unseen_text):
    """`python -m finetune eval` end to end, on the run's output folder and the whole text."""
    out, _, _ = run
    result = subprocess.run([sys.executable, "-m", "finetune", "eval", "--model", str(out), "--data", str(unseen_text),
                             "--block-size", "64", "--batch-size", "3", "--device", "cpu", "--json"],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    model = AutoModelForCausalLM.from_pretrained(str(out))
    tokenizer, _ = load_tokenizer_for(resolve_source(str(out)))
    data = build_dataset(read_documents([str(unseen_text)]), tokenizer, 64, heldout_fraction=0)
    expected = reference_loss(model, data.train_blocks)
    assert report["tokens"] == data.train_blocks.numel()
    assert report["loss"] == pytest.approx(expected, rel=1e-5)
    assert report["perplexity"] == pytest.approx(math.exp(expected), rel=1e-5)
