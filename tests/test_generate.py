"""Generation: prompts without EOS, reproducible seeds, streaming equals the whole text."""
import pytest

from finetune.generate import GenerationSettings, generate, prompt_tensor, stream
from finetune.models import load_model, load_tokenizer_for, resolve_source


@pytest.fixture(scope="module")
def tiny(tiny_model):
    source = resolve_source(tiny_model)
    tokenizer, _ = load_tokenizer_for(source)
    return load_model(source, "cpu"), tokenizer


def test_prompt_tensor_has_no_eos(tiny):
    model, tok = tiny
    ids = prompt_tensor(model, tok, "「科学」とは")[0].tolist()
    assert tok.eos_token_id not in ids and ids == tok.encode("「科学」とは", add_special_tokens=False)


def test_same_seed_same_text_other_seed_other_text(tiny):
    model, tok = tiny
    a = generate(model, tok, "「科学」とは", GenerationSettings(seed=1, max_new_tokens=30))
    b = generate(model, tok, "「科学」とは", GenerationSettings(seed=1, max_new_tokens=30))
    c = generate(model, tok, "「科学」とは", GenerationSettings(seed=2, max_new_tokens=30))
    assert a == b and a != c and len(a) > 5


def test_stream_yields_the_same_text_as_generate(tiny):
    model, tok = tiny
    settings = GenerationSettings(seed=5, max_new_tokens=25)
    pieces = list(stream(model, tok, "今日は", settings))
    assert len(pieces) > 1
    assert "".join(pieces) == generate(model, tok, "今日は", settings)


def test_generation_looks_like_japanese(tiny):
    model, tok = tiny
    text = generate(model, tok, "日本の", GenerationSettings(seed=0, max_new_tokens=60))
    japanese = sum("\u3040" <= ch <= "\u30ff" or "\u4e00" <= ch <= "\u9fff" for ch in text)
    assert japanese >= 0.6 * len(text.replace(" ", "")) > 0


def test_greedy_and_bad_settings():
    assert GenerationSettings(temperature=0).temperature == 0
    for bad in (dict(max_new_tokens=0), dict(top_p=0), dict(top_k=-1), dict(temperature=-1)):
        with pytest.raises(ValueError):
            GenerationSettings(**bad)


def forward_counter(model):
    """A list that grows by one with every forward pass of `model` (one per generated token), and
    the hook's handle. The hook also lets other threads run (sleep(0) releases the GIL), so that a
    caller closing the stream is not kept waiting by the generating thread."""
    import time
    calls = []

    def count(*args):
        calls.append(1)
        time.sleep(0)

    return calls, model.register_forward_pre_hook(count)


def test_closing_a_stream_stops_generation_at_the_next_token(tiny):
    """A closed stream (a Stop button, a closed page) generates a token or two more, not the rest
    of its 300: forward passes counted, no time measured."""
    from finetune.generate import SAMPLING_LOCK
    model, tok = tiny
    settings = GenerationSettings(seed=0, max_new_tokens=300)
    calls, hook = forward_counter(model)
    try:
        whole = "".join(stream(model, tok, "今日は", settings))
        left_alone = len(calls)
        calls.clear()
        pieces = stream(model, tok, "今日は", settings)
        first = next(pieces)
        before_close = len(calls)
        pieces.close()
        after_close = len(calls)
    finally:
        hook.remove()
    assert left_alone == 300 and whole.startswith(first)  # the same generation runs on to its end
    assert after_close - before_close <= 5
    assert after_close < 20
    assert SAMPLING_LOCK.acquire(timeout=1)  # the next user's generation can start
    SAMPLING_LOCK.release()


def test_max_new_tokens_is_clamped_to_the_model_context(tiny):
    model, tok = tiny
    context = model.config.max_position_embeddings
    settings = GenerationSettings(seed=0, max_new_tokens=2048, temperature=0, repetition_penalty=1.0)
    ids = prompt_tensor(model, tok, "今日は")
    text = generate(model, tok, "今日は", settings)
    assert len(tok.encode(text, add_special_tokens=False)) <= context - ids.shape[1] + 5
