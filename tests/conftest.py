"""Shared fixtures. Tests never touch the network: the Hub is switched off before anything imports it."""
import json
import os
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# One torch thread per process: tests run beside other test runs on 2 shared cores, where two
# OpenMP threads per process wait on each other (measured: the same test about 8x slower in wall time
# with 2 threads than with 1 under such load). Set OMP_NUM_THREADS to override.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "assets" / "tiny-japanese-gpt2"
UNSEEN = ROOT / "tests" / "data" / "unseen-ja.txt"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI (CI=true, as .ci/run and CI services set it) the browser test may not be skipped: a
    missing Chromium must fail the run instead of leaving the journey untested unnoticed."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)  # for fixtures that add evidence to a failure
    if report.skipped and item.path.name == "test_browser.py" and in_ci():
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"CI=true, so the browser test must run, but it was skipped: {reason}"


@pytest.fixture(scope="session")
def tiny_model() -> str:
    assert (TINY / "model.safetensors").is_file(), "the embedded model is missing: run assets/build_tiny_model.sh"
    return str(TINY)


@pytest.fixture(scope="session")
def unseen_text() -> Path:
    return UNSEEN


def build_rinna_like(folder: Path) -> Path:
    """A tokenizer folder shaped like rinna/japanese-gpt2-xsmall's: a unigram spiece.model with
    unk=0, bos=1, eos=2, pad=3 and [CLS] [SEP] [MASK] user symbols, no byte fallback, and rinna's
    tokenizer_config.json (T5Tokenizer, do_lower_case)."""
    import sentencepiece as spm
    folder.mkdir(parents=True, exist_ok=True)
    lines = [line for f in sorted((ROOT / "assets" / "corpus").glob("*.txt"))
             for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_prefix=str(folder / "spiece"), vocab_size=2000,
        model_type="unigram", unk_id=0, bos_id=1, eos_id=2, pad_id=3, pad_piece="[PAD]",
        user_defined_symbols=["[CLS]", "[SEP]", "[MASK]"], character_coverage=0.995, minloglevel=2)
    (folder / "spiece.vocab").unlink()
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "T5Tokenizer", "do_lower_case": True, "extra_ids": 0,
        "unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>", "pad_token": "[PAD]",
        "cls_token": "[CLS]", "sep_token": "[SEP]", "mask_token": "[MASK]", "additional_special_tokens": [],
    }), encoding="utf-8")
    (folder / "special_tokens_map.json").write_text(json.dumps({
        "unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>", "pad_token": "[PAD]",
        "cls_token": "[CLS]", "sep_token": "[SEP]", "mask_token": "[MASK]"}), encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def rinna_like(tmp_path_factory) -> Path:
    return build_rinna_like(tmp_path_factory.mktemp("rinna-like"))


class Crash(BaseException):
    """Stands in for the process dying: not an Exception, so train() neither logs an error event nor
    cleans anything up."""


def crashed_run(model: str, text: Path, out: Path) -> Path:
    """A run folder as a killed process leaves it: 8 steps planned, checkpoint-4 written, the process
    gone at step 6 with no final event and no final model."""
    from finetune.train import TrainSettings, train

    def die_at_step_6(record):
        if record["event"] == "step" and record["step"] >= 6:
            raise Crash()

    settings = TrainSettings(model=model, data=[str(text)], out=str(out), max_steps=8, block_size=64, batch_size=8,
                             device="cpu", seed=0, save_steps=4, eval_steps=100)
    with pytest.raises(Crash):
        train(settings, on_event=die_at_step_6)
    return out


def assert_trained_model(folder, base=None):
    """The model saved in `folder` loads with plain transformers, holds only finite weights, which
    training moved away from `base`'s when `base` is given, and predicts finite logits. Returns it."""
    import torch
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(str(folder))
    weights = model.state_dict()
    assert all(torch.isfinite(w).all() for w in weights.values() if w.is_floating_point()), f"{folder}: NaN/inf weights"
    if base is not None:
        before = AutoModelForCausalLM.from_pretrained(str(base)).state_dict()
        assert weights.keys() == before.keys()
        assert any(not torch.equal(weights[k], before[k]) for k in weights), f"{folder}: the base model, untrained"
    with torch.no_grad():
        logits = model(torch.tensor([[5, 6, 7, 8]])).logits
    assert logits.shape[-1] == model.config.vocab_size and torch.isfinite(logits).all()
    return model


def reference_loss(model, blocks, labels=None) -> float:
    """Mean next-token loss over all predicted tokens: each block's `labels=` loss (a mean over its
    own predicted tokens) weighted by how many tokens it predicts."""
    import torch
    labels = blocks if labels is None else labels
    model.eval()
    total, count = 0.0, 0
    for block, target in zip(blocks, labels):
        predicted = int((target[1:] != -100).sum())
        if predicted:
            with torch.no_grad():
                loss = model(input_ids=block[None], labels=target[None]).loss.item()
            total += loss * predicted
            count += predicted
    return total / count
