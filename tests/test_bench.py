"""The bench's bookkeeping (finetune/bench.py): time_to_quality's texts, splits, stages and verdict,
the streaming figure's tokenizer, and the speed defaults it measures (finetune/speed.py)."""
import math
import os

import pytest
import torch

from finetune import bench, speed
from finetune.bench import (corpus_documents, engine_report, fallback_text, heldout_every,
                            quality_values, stage_seconds, tail_lines)

ROOT = bench.ROOT


# ----------------------------------------------------------------------------------------------
# time_to_quality: texts and splits

def test_tail_lines_holds_out_the_last_lines_with_the_share():
    text = "".join(f"{i}行目の文です。\n" for i in range(40))
    head, tail = tail_lines(text, 0.1)
    assert head + tail == text and tail.startswith("3")  # cut at a line start, nothing lost
    assert len(tail) >= 0.1 * len(text) > len(tail) - len("39行目の文です。\n")  # the fewest lines that hold 10%


def test_heldout_every_tenth_document_and_never_all():
    docs = [f"doc {i}" for i in range(25)]
    train, held = heldout_every(docs, 0.1)
    assert held == ["doc 9", "doc 19"] and len(train) == 23 and not set(train) & set(held)
    assert heldout_every(["a", "b", "c"], 0.1) == (["a", "b"], ["c"])  # too few: the last one
    with pytest.raises(ValueError):
        heldout_every(["only"], 0.1)


def test_corpus_documents_are_reproducible_corpus_sentences_of_the_asked_size():
    docs = corpus_documents(30_000)
    assert docs == corpus_documents(30_000) and docs != corpus_documents(30_000, seed=1)
    total = sum(map(len, docs))
    assert 30_000 <= total < 30_000 + bench.CORPUS_FILE_CHARACTERS[1]
    assert all(len(d) <= bench.CORPUS_FILE_CHARACTERS[1] + 1_000 for d in docs)
    sentences = set(bench.corpus_sentences())
    first = docs[0].split("\n\n")[0]
    assert any(first.startswith(s) for s in sentences)  # made of the project's own sentences


def test_the_article_is_found_beside_or_above_the_checkout_or_replaced(tmp_path, monkeypatch):
    article = tmp_path / "article.txt"
    article.write_text("記事の本文です。\n" * 10, encoding="utf-8")
    monkeypatch.setenv("SEED_ARTICLE", str(article))
    assert bench.article_path() == article
    monkeypatch.setenv("SEED_ARTICLE", str(tmp_path / "missing.txt"))
    assert bench.article_path() is None
    texts = bench.quality_texts(tmp_path / "q", 20_000)
    assert [t.name for t in texts] == ["article", "corpus"]
    assert "not found" in texts[0].source and "assets/samples/blog" in texts[0].source
    stand_in = fallback_text()
    assert len(stand_in) >= bench.FALLBACK_CHARACTERS and abs(texts[0].characters - len(stand_in)) <= 2


def test_quality_texts_give_both_runs_the_same_training_text(tmp_path, monkeypatch):
    monkeypatch.setenv("SEED_ARTICLE", str(tmp_path / "missing.txt"))
    corpus = bench.quality_texts(tmp_path, 40_000)[1]
    files = sorted(corpus.train_dir.glob("*.txt"))
    in_folder = [f.read_text(encoding="utf-8") for f in files]
    joined = corpus.train_file.read_text(encoding="utf-8")
    assert joined == "\n\n".join(t.strip("\n") for t in in_folder) + "\n"
    assert corpus.heldout and not any(h in in_folder for h in corpus.heldout)
    assert corpus.characters == sum(map(len, in_folder)) + sum(map(len, corpus.heldout))


def test_judge_blocks_pack_the_heldout_documents_like_the_engine(tiny_model):
    from finetune.tokens import load_tokenizer
    tokenizer = load_tokenizer(tiny_model)[0]
    heldout = ["今日は晴れです。" * 40, "明日は雨でしょう。" * 40]
    blocks = bench.judge_blocks(tokenizer, heldout)
    ids = [i for text in heldout for i in tokenizer.encode(text, add_special_tokens=False) + [tokenizer.eos_token_id]]
    assert blocks.shape == (len(ids) // 128, 128)
    assert blocks.flatten().tolist() == ids[:blocks.numel()]


# ----------------------------------------------------------------------------------------------
# time_to_quality: bookkeeping

def test_stage_seconds_are_the_gaps_between_marks():
    assert stage_seconds(100.0, [("imported", 104.5), ("loaded", 105.0), ("saved", 112.25)]) == {
        "imported": 4.5, "loaded": 0.5, "saved": 7.25}


def test_engine_report_reads_its_stages_from_the_progress_events():
    events = [{"event": "start", "time": 106.0}, {"event": "eval", "step": 0, "time": 106.5},
              {"event": "step", "step": 10, "time": 110.0}, {"event": "eval", "step": 10, "time": 110.2},
              {"event": "done", "time": 115.0}]
    metrics = {"steps": 10, "tokens_seen": 10240, "heldout_loss_after": 5.12345, "precision": "bf16",
               "batch_size": 8, "block_size": 128, "learning_rate": 2e-4, "compiled": False,
               "train_tokens_per_second": 3000.0}
    report = engine_report(100.0, 116.0, metrics, events)
    assert report["seconds"] == 15.0 and report["process_seconds"] == 16.0
    assert report["stages"] == {"ready": 6.0, "evaluated": 0.5, "trained_and_saved": 8.5}
    assert report["own_heldout_loss"] == 5.1235 and report["settings"]["precision"] == "bf16"


def test_the_engine_counts_only_when_it_reaches_the_seeds_loss():
    seed, engine = {"seconds": 300.0}, {"seconds": 100.0}
    reached = quality_values(seed, engine, seed_loss=5.40, engine_loss=5.40)
    assert reached["reached"] and reached["engine_seconds"] == 100.0 and reached["speedup"] == 3.0
    missed = quality_values(seed, engine, seed_loss=5.40, engine_loss=5.41)
    assert not missed["reached"] and missed["engine_seconds"] is None and missed["speedup"] is None
    assert missed["engine_run_seconds"] == 100.0 and missed["engine_heldout_loss"] == 5.41


def test_seed_recipe_and_engine_end_to_end_in_their_own_processes(tmp_path, tiny_model):
    """Both children on a small text: each saves a model that the same judge scores below the base."""
    text = "".join(f"{i}番目の段落です。今日は朝から雨が降っていたので、図書館で本を読みました。\n" for i in range(60))
    head, tail = tail_lines(text, 0.1)
    quality = bench.write_quality_text(tmp_path, "small", "test", [head], [tail])
    from finetune.tokens import load_tokenizer
    blocks = bench.judge_blocks(load_tokenizer(tiny_model)[0], [head])[:4]  # seen text: training must lower it
    seed = bench.seed_child(quality, tmp_path / "seed", "cpu")
    engine = bench.engine_child(quality, tmp_path / "engine", "cpu")
    for report, folder in ((seed, "seed"), (engine, "engine")):
        assert (tmp_path / folder / "model.safetensors").is_file()
        assert 0 < sum(report["stages"].values()) == pytest.approx(report["seconds"], abs=0.05)
        assert report["seconds"] <= report["process_seconds"] and report["steps"] > 0
    assert seed["steps"] == 3 * math.ceil(seed["tokens_seen"] // (3 * 128) / 8)  # the article's 3 epochs of 8 blocks
    base = bench.judged_loss(ROOT / "assets" / "tiny-japanese-gpt2", blocks, "cpu")
    assert bench.judged_loss(tmp_path / "seed", blocks, "cpu") < base
    assert bench.judged_loss(tmp_path / "engine", blocks, "cpu") < base


# ----------------------------------------------------------------------------------------------
# Generation and levers

def test_cjk_tokenizer_gives_every_id_one_character():
    tokenizer = bench.cjk_tokenizer()
    assert len(tokenizer) == 32000 and tokenizer.eos_token_id == 2 and tokenizer.pad_token_id == 3
    ids = list(range(4, 32000, 997))
    text = tokenizer.decode(ids)
    assert len(text) == len(ids) and tokenizer.encode(text, add_special_tokens=False) == ids


def test_lever_context_restores_threads_and_the_loss():
    from transformers import GPT2LMHeadModel
    threads, forward = torch.get_num_threads(), GPT2LMHeadModel.forward
    with bench.lever_context(threads=1, loss="chunked"):
        assert torch.get_num_threads() == 1 and GPT2LMHeadModel.forward is not forward
    assert torch.get_num_threads() == threads and GPT2LMHeadModel.forward is forward


def test_cpu_levers_run_only_the_precision_the_cpu_does_fast(monkeypatch):
    monkeypatch.setattr(bench, "cpu_has_fast_bf16", lambda: False)
    names = [name for name, _, _ in bench.lever_settings("cpu")]
    assert not any("bf16" in n for n in names) and "fp32 8x128 compiled" in names
    monkeypatch.setattr(bench, "cpu_has_fast_bf16", lambda: True)
    names = [name for name, _, _ in bench.lever_settings("cpu")]
    assert "fp32 8x128" in names and "bf16 8x128 eager" in names and "bf16 8x128, 1 thread" in names


# ----------------------------------------------------------------------------------------------
# The speed defaults (finetune/speed.py)

def test_evaluations_stay_within_their_share_of_training():
    # 1M-character corpus, 3 epochs of 8x128 steps, 56k held-out tokens: 7 evaluations, not 10
    steps = 3 * 500
    evals = steps // speed.default_eval_interval(steps, 1024, 56_000)
    assert evals == 7 and evals * 56_000 / 3 <= speed.EVAL_SHARE * steps * 1024
    assert speed.default_eval_interval(1500, 1024, 500_000) == 1500      # costly: only at the end
    assert speed.default_eval_interval(12, 1024, 384) == 2                # tiny held-out part: often
    assert speed.default_eval_interval(1000, 1024, 0) == 100              # nothing held out: 10 points
    assert speed.default_eval_interval(3, 1024, 100) == 1


def test_small_gpu_steps_train_in_fp32_large_ones_in_the_fast_format():
    assert speed.default_precision("cuda", 8 * 128, "bf16") == "fp32"
    assert speed.default_precision("cuda", 64 * 1024, "bf16") == "bf16"
    assert speed.default_precision("cpu", 8 * 128, "bf16") == "bf16"  # AMX: bf16 at any size
    assert speed.default_precision("cpu", 8 * 128, "fp32") == "fp32"  # AVX2 only: fp32


def test_gpu_steps_never_hold_fewer_blocks_than_the_seeds():
    assert speed.default_batch_size("cuda", 128, train_blocks=264, epochs=1, max_steps=-1) == 8
    assert speed.default_batch_size("cuda", 1024, train_blocks=10**6, epochs=1, max_steps=-1) == 64


def test_default_learning_rate_is_higher_for_full_fine_tunes_and_capped():
    assert speed.default_lr("full", 1024) == speed.FULL_LR
    assert speed.default_lr("full", 64 * 1024) == speed.MAX_FULL_LR  # not 8 x 2e-4
    assert speed.default_lr("lora", 1024) == speed.LORA_LR
    assert speed.default_lr("lora", 64 * 1024) == pytest.approx(8 * speed.LORA_LR)


def test_cpu_compiles_long_runs_only_where_bf16_is_fast(monkeypatch):
    import finetune.devices
    monkeypatch.setattr(finetune.devices, "cpu_has_fast_bf16", lambda: True)
    assert speed.should_compile("auto", "cpu", speed.CPU_COMPILE_MIN_TOKENS)
    assert not speed.should_compile("auto", "cpu", speed.CPU_COMPILE_MIN_TOKENS - 1)
    monkeypatch.setattr(finetune.devices, "cpu_has_fast_bf16", lambda: False)
    assert not speed.should_compile("auto", "cpu", 10**12)


@pytest.mark.parametrize("quota,expected", [("max 100000", None), ("150000 100000", 1), ("100000 100000", 1),
                                            ("50000 100000", 1)])
def test_cpu_threads_follow_the_cgroup_quota(tmp_path, monkeypatch, quota, expected):
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text(quota + "\n")
    monkeypatch.setattr(speed, "CGROUP_CPU_MAX", str(cpu_max))
    allowed = len(os.sched_getaffinity(0))
    assert speed.cpu_threads() == (allowed if expected is None else min(allowed, expected))
    monkeypatch.setattr(speed, "CGROUP_CPU_MAX", str(tmp_path / "none"))
    assert speed.cpu_threads() == allowed


def test_chunked_loss_equals_the_models_own_loss_and_gradients(tiny_model, monkeypatch):
    from transformers import AutoModelForCausalLM, GPT2LMHeadModel
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    model.eval()  # no dropout: both losses see the same activations
    ids = torch.randint(4, 6000, (2, 40))
    labels = ids.clone()
    labels[0, :10] = -100  # masked tokens (Q&A prompts) stay masked
    expected = model(input_ids=ids, labels=labels).loss
    expected.backward()
    grad = model.transformer.h[0].attn.c_attn.weight.grad.clone()
    model.zero_grad()
    chunked = speed.fused_loss_forward(GPT2LMHeadModel.forward, "chunked")
    monkeypatch.setattr(speed, "LOSS_CHUNK_TOKENS", 7)  # many chunks, the last one short
    loss = chunked(model, input_ids=ids, labels=labels).loss
    loss.backward()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert torch.allclose(model.transformer.h[0].attn.c_attn.weight.grad, grad, atol=1e-5)
    assert chunked(model, input_ids=ids).logits.shape == (2, 40, 6000)  # no labels: the model's own forward


def test_seed_recipe_script_cuts_the_file_into_128_token_blocks(tmp_path, tiny_model):
    import importlib.util
    spec = importlib.util.spec_from_file_location("seed_recipe", ROOT / "scripts" / "seed_recipe.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    data = tmp_path / "testdata.txt"
    data.write_text("今日は朝から雨が降っていました。\n" * 100, encoding="utf-8")
    blocks = module.TextBlocks(tokenizer, str(data), 128)
    ids = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(data.read_text(encoding="utf-8")))
    assert len(blocks) == len(ids) // 128 and blocks[1].tolist() == ids[128:256]


def test_auto_epochs_are_the_seeds_three_but_two_for_large_texts():
    from finetune.train import TrainSettings
    assert TrainSettings().epochs == 0  # auto, resolved when the data is known
    assert speed.default_epochs(4_000) == 3.0  # the article
    assert speed.default_epochs(speed.LARGE_TEXT_TOKENS) == 2.0  # a 1M-character text
    with pytest.raises(ValueError):
        TrainSettings(epochs=-1)


def test_first_step_is_timed_for_a_fresh_and_a_warm_process():
    figure = bench.first_step_seconds("cpu")
    assert figure["figure"] == "first_step"
    assert 0 < figure["warm_seconds"] and 0 < figure["cold_seconds"]
