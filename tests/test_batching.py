"""Batched generation: a request's text is the one it gets alone, whatever is decoded beside it;
rows join and leave between steps; each keeps its own settings; errors reach their callers."""
import copy
import threading

import pytest
import torch

from finetune.batching import GenerationBatcher
from finetune.generate import GenerationSettings, generate
from finetune.models import load_model, load_tokenizer_for, resolve_source

PROMPTS = ["「科学」とは", "今日は", "昔々、ある海辺の町に住んでいた漁師は、毎朝", "日本の"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread (see tests/test_generate.py): the same results, far faster on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny(tiny_model):
    source = resolve_source(tiny_model)
    tokenizer, _ = load_tokenizer_for(source)
    return load_model(source, "cpu"), tokenizer


class Passes:
    """Records the rows of every forward pass of a model (a pre-hook), and can make one fail."""

    def __init__(self, model, fail_after: int | None = None, error: BaseException | None = None):
        self.sizes: list[int] = []
        self.fail_after, self.error = fail_after, error
        self.handle = model.register_forward_pre_hook(self.record, with_kwargs=True)

    def record(self, module, args, kwargs):
        self.sizes.append(kwargs["input_ids"].shape[0])
        if self.fail_after is not None and len(self.sizes) > self.fail_after:
            raise self.error

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.remove()


def together(batcher, jobs):
    """Run every (model, tokenizer, prompt, settings) job in its own thread, all at once; their texts."""
    texts: list = [None] * len(jobs)
    start = threading.Barrier(len(jobs))

    def run(i):
        start.wait()
        texts[i] = "".join(batcher.stream(*jobs[i]))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return texts


def test_a_batch_gives_each_request_its_solo_text_and_shares_passes(tiny):
    model, tok = tiny
    batcher = GenerationBatcher(max_batch=8, gather_seconds=1.0)  # gathering ends when all 8 are in
    jobs = [(model, tok, PROMPTS[i % 4], GenerationSettings(seed=i, max_new_tokens=30, top_k=(50, 0, 10, 200)[i % 4]))
            for i in range(8)]
    solo = [generate(*job) for job in jobs]
    with Passes(model) as passes:
        texts = together(batcher, jobs)
    assert texts == solo
    assert max(passes.sizes) > 1 and len(passes.sizes) < 8 * 30  # rows shared forward passes
    assert batcher.running() == (0, 0)


def test_concurrent_threads_each_get_their_own_text(tiny):
    model, tok = tiny
    batcher = GenerationBatcher(max_batch=16)
    jobs = [(model, tok, "「科学」とは", GenerationSettings(seed=seed, max_new_tokens=20)) for seed in range(10)]
    texts = together(batcher, jobs)
    assert texts == [generate(*job) for job in jobs]
    assert len(set(texts)) >= 8  # ten seeds, (almost) ten different texts: no row got another's


def test_greedy_and_sampled_rows_keep_their_own_settings_in_one_batch(tiny):
    model, tok = tiny
    batcher = GenerationBatcher(max_batch=4, gather_seconds=1.0)
    greedy = [GenerationSettings(seed=seed, temperature=0, max_new_tokens=25) for seed in (1, 2)]
    sampled = [GenerationSettings(seed=1, temperature=1.5, top_k=0, top_p=1.0, repetition_penalty=1.0,
                                  max_new_tokens=25),
               GenerationSettings(seed=1, temperature=0.3, top_k=5, top_p=0.5, repetition_penalty=2.0,
                                  max_new_tokens=7)]
    jobs = [(model, tok, "日本の", s) for s in greedy + sampled]
    with Passes(model) as passes:
        texts = together(batcher, jobs)
    assert max(passes.sizes) == 4
    assert texts == [generate(*job) for job in jobs]
    assert texts[0] == texts[1]                       # greedy ignores the seed
    assert len({texts[0], texts[2], texts[3]}) == 3   # each row decoded under its own rules
    assert len(tok.encode(texts[3], add_special_tokens=False)) <= 7 + 2  # its own max new tokens


def test_a_request_joins_a_running_batch_at_the_next_step(tiny):
    model, tok = tiny
    batcher = GenerationBatcher(max_batch=4)
    first = (model, tok, "「科学」とは", GenerationSettings(temperature=0, max_new_tokens=200))
    second = (model, tok, "今日は", GenerationSettings(seed=3, max_new_tokens=30))
    alone = generate(*first)
    assert len(tok.encode(alone, add_special_tokens=False)) > 100  # it runs long enough to be joined
    with Passes(model) as passes:
        running = batcher.stream(*first)
        text = next(running)
        joined = "".join(batcher.stream(*second))
        text += "".join(running)
    assert (text, joined) == (alone, generate(*second))
    assert 2 in passes.sizes and passes.sizes[-1] == 1  # decoded together, then the long one alone


def test_a_closed_stream_frees_its_row_for_a_waiting_request(tiny):
    model, tok = tiny
    batcher = GenerationBatcher(max_batch=1)
    endless = batcher.stream(model, tok, "今日は", GenerationSettings(temperature=0, max_new_tokens=2048))
    waiting_job = (model, tok, "日本の", GenerationSettings(seed=4, max_new_tokens=10))
    with Passes(model) as passes:
        next(endless)
        result = {}
        waiter = threading.Thread(target=lambda: result.update(text="".join(batcher.stream(*waiting_job))))
        waiter.start()
        for _ in range(6000):  # the second request waits for the only row (a guard, not a timing)
            if batcher.running() == (1, 1):
                break
            threading.Event().wait(0.01)
        assert batcher.running() == (1, 1)
        endless.close()  # returns once its row has left
        at_close = len(passes.sizes)
        waiter.join()
    assert result["text"] == generate(*waiting_job)
    # after the close: the waiting request's 10 passes (and at most one more of the closed one),
    # not the ~500 left of the closed one
    assert len(passes.sizes) - at_close <= 10 + 1
    assert batcher.running() == (0, 0)


def test_different_models_decode_as_separate_batches(tiny):
    from peft import LoraConfig, get_peft_model
    model, tok = tiny
    lora = get_peft_model(copy.deepcopy(model), LoraConfig(r=4, lora_alpha=8, target_modules=["c_attn"]))
    with torch.no_grad():  # a LoRA that changes something, so the two models differ
        for name, p in lora.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.2, generator=torch.Generator().manual_seed(0))
    batcher = GenerationBatcher(max_batch=6, gather_seconds=1.0)
    jobs = [(m, tok, PROMPTS[i], GenerationSettings(seed=i, max_new_tokens=20))
            for m in (model, lora) for i in range(3)]
    with Passes(model) as base_passes, Passes(lora.get_base_model()) as lora_passes:
        texts = together(batcher, jobs)
    assert texts == [generate(*job) for job in jobs]
    assert texts[:3] != texts[3:]
    assert max(base_passes.sizes) <= 3 and max(lora_passes.sizes) <= 3 and max(base_passes.sizes) > 1


def test_errors_reach_every_caller_and_the_worker_serves_on(tiny):
    model, tok = tiny
    batcher = GenerationBatcher(max_batch=4)
    with pytest.raises(ValueError, match="reads at most"):  # a prompt longer than the context
        next(batcher.stream(model, tok, "今日は" * 2000, GenerationSettings()))
    errors = []

    def failing_request(i):
        try:
            "".join(batcher.stream(model, tok, PROMPTS[i], GenerationSettings(seed=i, max_new_tokens=50)))
        except RuntimeError as err:
            errors.append(str(err))

    with Passes(model, fail_after=3, error=RuntimeError("out of memory (simulated)")):
        threads = [threading.Thread(target=failing_request, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == ["out of memory (simulated)"] * 3
    job = (model, tok, "今日は", GenerationSettings(seed=1, max_new_tokens=10))
    assert "".join(batcher.stream(*job)) == generate(*job) and batcher.worker.is_alive()


class Fatal(BaseException):
    """Not an Exception: stands in for something that ends the worker thread itself."""


def test_a_dead_worker_is_reported_not_silent(tiny):
    model, tok = tiny
    batcher = GenerationBatcher()
    with Passes(model, fail_after=0, error=Fatal("worker killed")):
        with pytest.raises(Fatal):
            "".join(batcher.stream(model, tok, "今日は", GenerationSettings()))
    batcher.worker.join()
    with pytest.raises(RuntimeError, match="generation worker has stopped.*worker killed"):
        next(batcher.stream(model, tok, "今日は", GenerationSettings()))


def test_settings_of_the_batcher_are_checked():
    for bad in (dict(max_batch=0), dict(gather_seconds=-1)):
        with pytest.raises(ValueError):
            GenerationBatcher(**bad)
