"""Generation: prompts without EOS, reproducible seeds, streaming equals the whole text, the
sampling rules row by row."""
import pytest
import torch

from finetune.generate import GenerationSettings, Row, TextPieces, generate, next_tokens, prompt_tensor, stream
from finetune.models import load_model, load_tokenizer_for, resolve_source


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: on a 2-core machine shared with other test runs, two threads spinning at each
    small operation's barrier make a tiny model's token ten times slower; the results are the same."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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


def test_closing_a_stream_early_stops_generation(tiny):
    model, tok = tiny
    passes = []
    hook = model.register_forward_pre_hook(lambda module, args: passes.append(1))
    try:
        pieces = stream(model, tok, "今日は", GenerationSettings(seed=0, max_new_tokens=2048))
        next(pieces)
        pieces.close()
    finally:
        hook.remove()
    assert 1 <= len(passes) <= 3  # the prefill and a step or two, not the ~500 tokens asked for


def test_greedy_equals_transformers_generate(tiny):
    """Positions, the cache and the repetition penalty as transformers' own generate has them."""
    model, tok = tiny
    for prompt in ("「科学」とは", "昔々、ある海辺の町に"):
        ids = prompt_tensor(model, tok, prompt)
        theirs = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=40, do_sample=False,
                                repetition_penalty=1.3, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        ours = generate(model, tok, prompt, GenerationSettings(temperature=0, repetition_penalty=1.3, max_new_tokens=40))
        assert ours == tok.decode(theirs[0, ids.shape[1]:], skip_special_tokens=True) and len(ours) > 10


def rows(n: int, **settings) -> list[Row]:
    return [Row(prompt_ids=[1], settings=GenerationSettings(seed=i, **settings), budget=10, eos_id=None)
            for i in range(n)]


def test_sampling_rules_row_by_row():
    logits = torch.tensor([[2.0, 1.9, 0.5, -1.0, -3.0]])
    seen = torch.tensor([[True, False, False, False, False]])
    # the penalty divides a positive seen logit (2.0 / 1.5 < 1.9) and multiplies a negative one
    assert next_tokens(logits, seen, rows(1, temperature=0, repetition_penalty=1.5)).tolist() == [1]
    assert next_tokens(logits, seen, rows(1, temperature=0, repetition_penalty=1.0)).tolist() == [0]
    negative = torch.tensor([[-1.0, -1.2, -5.0]])
    assert next_tokens(negative, torch.tensor([[True, False, False]]),
                       rows(1, temperature=0, repetition_penalty=1.5)).tolist() == [1]
    many = logits.repeat(400, 1)
    unseen = torch.zeros_like(many, dtype=torch.bool)
    # top-k 2 and top-p 0.5 at a high temperature: only the allowed tokens, and each of them drawn
    assert set(next_tokens(many, unseen, rows(400, temperature=3, top_k=2, top_p=1.0)).tolist()) == {0, 1}
    assert set(next_tokens(many, unseen, rows(400, temperature=3, top_k=0, top_p=0.5)).tolist()) == {0, 1}
    assert set(next_tokens(many, unseen, rows(400, temperature=3, top_k=0, top_p=0.3)).tolist()) == {0}
    assert set(next_tokens(many, unseen, rows(400, temperature=3, top_k=0, top_p=1.0)).tolist()) == {0, 1, 2, 3, 4}
    assert set(next_tokens(many, unseen, rows(400, temperature=0.8, top_k=1)).tolist()) == {0}


def test_draws_follow_the_distribution():
    probs = torch.tensor([0.6, 0.3, 0.1])
    n = 6000
    tokens = next_tokens(probs.log().repeat(n, 1), torch.zeros(n, 3, dtype=torch.bool),
                         rows(n, temperature=1, top_k=0, top_p=1.0, repetition_penalty=1.0))
    shares = torch.bincount(tokens, minlength=3) / n
    assert torch.allclose(shares, probs, atol=0.03)  # about 4 standard errors


def test_a_row_draws_the_same_whatever_is_beside_it():
    torch.manual_seed(0)
    logits = torch.randn(6, 300)
    seen = torch.rand(6, 300) < 0.1
    mixed = [GenerationSettings(seed=7, top_k=k, top_p=p, temperature=t)
             for k, p, t in ((50, 0.9, 0.8), (0, 1.0, 1.0), (5, 0.5, 2.0), (200, 0.95, 0.7), (1, 1.0, 1.0), (0, 0.2, 0))]
    batch = [Row(prompt_ids=[1], settings=s, budget=5, eos_id=None) for s in mixed]
    together = next_tokens(logits, seen, batch)
    alone = [next_tokens(logits[i:i + 1], seen[i:i + 1], [Row(prompt_ids=[1], settings=s, budget=5, eos_id=None)])
             for i, s in enumerate(mixed)]
    assert together.tolist() == torch.cat(alone).tolist()


def test_text_pieces_hold_back_an_incomplete_character():
    class Bytes:  # a byte-level tokenizer: token i is byte i
        @staticmethod
        def decode(ids, skip_special_tokens=True):
            return bytes(ids).decode("utf-8", errors="replace")

    pieces = TextPieces(Bytes())
    a, i = list("あ".encode()), list("い".encode())
    assert [pieces.add(a[:1]), pieces.add(a[1:2]), pieces.add(a[2:] + i[:1]), pieces.add(i[1:])] == ["", "", "", "あい"]
    assert pieces.add(list(b"x")) == "x" and pieces.rest() == ""


def test_max_new_tokens_is_clamped_to_the_model_context(tiny):
    model, tok = tiny
    context = model.config.max_position_embeddings
    settings = GenerationSettings(seed=0, max_new_tokens=2048, temperature=0, repetition_penalty=1.0)
    ids = prompt_tensor(model, tok, "今日は")
    text = generate(model, tok, "今日は", settings)
    assert len(tok.encode(text, add_special_tokens=False)) <= context - ids.shape[1] + 5
