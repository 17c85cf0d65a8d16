"""Tokenizer correctness: parity with sentencepiece, unknown → unk (never EOS), no EOS on prompts."""
import sentencepiece as spm
from transformers import AutoTokenizer

from finetune.tokens import check_parity, encode_prompt, load_tokenizer, token_view

SENTENCES = [
    "これはペンです。これはリンゴです。",
    "齟齬と魑魅魍魎、鬱蒼とした森。",          # rare kanji
    "絵文字😀と👍🏽も入る🙂",                  # emoji (not in the vocabulary)
    "Hello WORLD, GPT-2 and Python",          # ASCII upper case
    "全角のＡＢＣ１２３と　全角スペース",        # full-width characters
    "空白が   三つ、  二つ。",                  # runs of spaces
    "一行目\n二行目\n\n\n四行目\n",              # newlines
]


def spm_ids(folder, text, lower=True):
    sp = spm.SentencePieceProcessor(model_file=str(folder / "spiece.model"))
    return sp.encode(text.lower() if lower else text)


def test_plain_autotokenizer_is_broken_on_rinna_like_folder(rinna_like):
    """The bug we repair exists: transformers 5 maps unknown pieces to </s> and appends </s>."""
    raw = AutoTokenizer.from_pretrained(str(rinna_like))
    assert check_parity(raw, rinna_like / "spiece.model", lowercase=True).status == "mismatch"
    assert raw("ABC")["input_ids"][-1] == raw.eos_token_id


def test_repaired_tokenizer_matches_sentencepiece(rinna_like):
    tok, parity = load_tokenizer(str(rinna_like))
    assert parity.status == "repaired"
    for text in SENTENCES:
        assert tok.encode(text, add_special_tokens=False) == spm_ids(rinna_like, text), text


def test_unknown_characters_become_unk_never_eos(rinna_like):
    tok, _ = load_tokenizer(str(rinna_like))
    ids = tok.encode("😀齟齬😀", add_special_tokens=False)
    assert tok.unk_token_id == 0 and tok.eos_token_id == 2
    assert 0 in ids and 2 not in ids


def test_encoding_appends_nothing(rinna_like):
    tok, _ = load_tokenizer(str(rinna_like))
    assert tok("これはペンです。")["input_ids"] == spm_ids(rinna_like, "これはペンです。")


def test_repair_survives_save_and_plain_reload(rinna_like, tmp_path):
    tok, _ = load_tokenizer(str(rinna_like))
    tok.save_pretrained(tmp_path)
    plain = AutoTokenizer.from_pretrained(str(tmp_path))
    for text in SENTENCES:
        assert plain.encode(text, add_special_tokens=False) == spm_ids(rinna_like, text)


def test_embedded_model_tokenizer_has_parity_and_byte_fallback(tiny_model):
    tok, parity = load_tokenizer(tiny_model)
    assert parity.status == "ok"
    sp = spm.SentencePieceProcessor(model_file=f"{tiny_model}/spiece.model")
    for text in SENTENCES:
        assert tok.encode(text, add_special_tokens=False) == sp.encode(text)
    assert tok.unk_token_id not in tok.encode("😀齟齬", add_special_tokens=False)


def test_prompt_never_ends_with_eos(rinna_like, tiny_model):
    """Also with transformers 5's own T5Tokenizer for rinna's files, which appends </s> to every text
    (the seed article's bug: a prompt ending in </s> tells the model the text is over)."""
    raw = AutoTokenizer.from_pretrained(str(rinna_like))
    assert raw.encode("「科学」とは")[-1] == raw.eos_token_id  # the tokenizer that would add it
    for tok in (load_tokenizer(str(rinna_like))[0], load_tokenizer(tiny_model)[0], raw):
        ids = encode_prompt(tok, "「科学」とは")
        assert ids and ids[-1] != tok.eos_token_id
        assert tok.eos_token_id not in ids


def test_token_view_spans_cover_the_text_and_group_bytes(tiny_model):
    tok, _ = load_tokenizer(tiny_model)
    text = "猫が🙂と言った"
    view = token_view(tok, text)
    assert "".join(s.text for s in view.spans) == text
    emoji = [s for s in view.spans if s.text == "🙂"]
    assert len(emoji) == 1 and emoji[0].kind == "byte" and len(emoji[0].ids) == 4
    assert view.count == len(view.ids) == len(view.tokens)
    assert view.characters == len(text)


def test_token_view_splits_a_run_of_unknown_characters_per_character(tiny_model):
    tok, _ = load_tokenizer(tiny_model)
    view = token_view(tok, "龘靐😀")
    assert [s.text for s in view.spans] == ["龘", "靐", "😀"]
    assert all(s.kind == "byte" for s in view.spans) and [len(s.ids) for s in view.spans] == [3, 3, 4]


def test_token_view_lone_word_start_marker_covers_no_text(rinna_like):
    tok, _ = load_tokenizer(str(rinna_like))
    view = token_view(tok, "ゑ")  # rinna-like: dummy-prefix ▁, then the character
    assert "".join(s.text for s in view.spans) == "ゑ"
    assert view.spans[0].tokens == ["▁"] and view.spans[0].text == ""
