"""`python -m finetune scratch` end to end: a new tokenizer and a new small GPT-2 from the user's text
alone, saved as a folder that plain transformers and sentencepiece read, with before/after numbers
that are the untrained and the trained model's."""
import json
import math
import subprocess
import sys

import pytest
import sentencepiece as spm
from transformers import AutoModelForCausalLM, AutoTokenizer

from conftest import ROOT, assert_trained_model, reference_loss
from finetune.data import build_dataset, read_documents
from finetune.generate import GenerationSettings, generate

SHAPE = ["--vocab-size", 1000, "--layers", 1, "--width", 64, "--heads", 2, "--context", 64]


@pytest.fixture(scope="module")
def scratch_run(unseen_text, tmp_path_factory):
    out = tmp_path_factory.mktemp("scratch") / "run"
    args = ["scratch", "--data", unseen_text, "--out", out, *SHAPE, "--max-steps", 20, "--block-size", 64,
            "--batch-size", 8, "--lr", 3e-3, "--device", "cpu", "--precision", "fp32", "--seed", 0, "--json"]
    result = subprocess.run([sys.executable, "-m", "finetune", *map(str, args)], cwd=ROOT, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, json.loads(result.stdout)


def test_scratch_writes_a_model_and_tokenizer_that_plain_libraries_read(scratch_run, unseen_text):
    out, metrics = scratch_run
    assert metrics["base_model"] == "scratch" and metrics["steps"] == 20
    assert json.loads((out / "metrics.json").read_text(encoding="utf-8")) == metrics
    model = assert_trained_model(out)
    assert (model.config.n_layer, model.config.n_embd, model.config.n_positions) == (1, 64, 64)
    tokenizer = AutoTokenizer.from_pretrained(str(out))
    sp = spm.SentencePieceProcessor(model_file=str(out / "spiece.model"))
    assert len(tokenizer) == sp.get_piece_size() == model.config.vocab_size <= 1000
    text = unseen_text.read_text(encoding="utf-8")[:300]
    assert tokenizer.encode(text, add_special_tokens=False) == sp.encode(text)  # the new tokenizer's parity
    assert sp.unk_id() not in sp.encode("鬱蒼😀")  # byte fallback: nothing is unknown
    continuation = generate(model, tokenizer, "今日は", GenerationSettings(seed=0, max_new_tokens=10))
    assert continuation and "</s>" not in continuation


def test_scratch_before_is_an_untrained_model_and_after_the_trained_one(scratch_run, unseen_text):
    """An untrained model guesses every token about evenly: its loss is near log(vocabulary). The
    after figure is the saved model's own loss on the held-out blocks (rebuilt here)."""
    out, metrics = scratch_run
    vocabulary = AutoModelForCausalLM.from_pretrained(str(out)).config.vocab_size
    assert metrics["heldout_loss_before"] == pytest.approx(math.log(vocabulary), abs=0.3)
    tokenizer = AutoTokenizer.from_pretrained(str(out))
    data = build_dataset(read_documents([str(unseen_text)]), tokenizer, 64, 0.1, 0)
    after = reference_loss(AutoModelForCausalLM.from_pretrained(str(out)), data.heldout_blocks)
    assert metrics["heldout_loss_after"] == pytest.approx(after, rel=1e-5)
    assert after < metrics["heldout_loss_before"] - 0.5
