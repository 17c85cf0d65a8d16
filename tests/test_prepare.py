"""`prepare`: the report on the user's text, the CLI command, and Q&A pairs through to masked labels."""
import json

import pytest

from finetune.cli import main
from finetune.data import IGNORE, Document, build_dataset, read_documents, split_heldout
from finetune.errors import DataError
from finetune.prepare import PrepareSettings, needed_tokens, prepare, setting_help
from finetune.tokens import encode_document
from test_formats import AOZORA, STORY, write

# Original sample text (written for these tests).
HTML = """<html><head><title>店のサイト</title><script>track()</script></head><body>
<nav>トップ | お知らせ | アクセス</nav><main><h1>秋の新作</h1>
<p>栗とさつまいもを使ったパンが今週から並びます。数量限定なので、お早めにどうぞ。</p></main>
<footer>© 架空のパン屋</footer></body></html>"""
MARKDOWN = "# 仕込みの手順\n\n前の晩に**生地**をこねて、冷蔵庫でゆっくり発酵させる。\n\n- 粉を量る\n- 水を加える\n"
QA_LINES = [
    {"question": "営業時間は？", "answer": "朝八時から夕方六時までです。"},
    {"instruction": "駐車場はありますか？", "output": "店の前に二台分あります。"},
    {"messages": [{"role": "user", "content": "予約はできますか？"},
                  {"role": "assistant", "content": "前日までにお電話ください。"}]},
]
CSV = "質問,回答\nカードは使えますか？,はい、主要なカードが使えます。\nイートインはありますか？,窓際に四席あります。\n"


def mixed_folder(root):
    write(root, "page.html", HTML)
    write(root, "notes.md", MARKDOWN)
    write(root, "faq.jsonl", "\n".join(json.dumps(x, ensure_ascii=False) for x in QA_LINES))
    write(root, "faq.csv", CSV)
    write(root, "photo.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10")
    write(root, "empty.txt", b"")
    return root


def run_cli(capsys, *args):
    code = main(["prepare", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


# ---------------------------------------------------------------------------------------------- settings

@pytest.mark.parametrize("bad", [dict(block_size=4), dict(heldout=0.95), dict(heldout=-0.1),
                                 dict(encoding="no-such-codec"), dict(encodings={"a.txt": "nope"}),
                                 dict(max_file_mb=0), dict(preview=-1)])
def test_settings_are_validated(bad):
    with pytest.raises(ValueError):
        PrepareSettings(data=["x.txt"], **bad)


def test_settings_need_some_input_and_every_field_has_help():
    with pytest.raises(ValueError, match="at least one"):
        PrepareSettings()
    for name in PrepareSettings.__dataclass_fields__:
        assert setting_help(name), name


def test_needed_tokens_matches_the_held_out_split():
    for block_size, heldout in [(16, 0.1), (32, 0.25), (128, 0.1), (64, 0.0)]:
        needed = needed_tokens(block_size, heldout)
        docs = [Document("d", "x")]
        split_heldout(docs, [[5] * (needed - 1)], heldout, block_size, seed=0)  # needed tokens with the EOS: fits
        if heldout:
            with pytest.raises(DataError, match="too short"):
                split_heldout(docs, [[5] * (needed - 2)], heldout, block_size, seed=0)


# ---------------------------------------------------------------------------------------------- no tokenizer needed

def test_nothing_usable_exits_2_with_reasons_and_still_reports(tmp_path, capsys):
    write(tmp_path, "empty.txt", b"")
    write(tmp_path, "photo.jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00")
    code, out, err = run_cli(capsys, "--data", tmp_path, "--model", tmp_path / "no-model", "--json")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "empty.txt: the file is empty" in err and "JPEG image" in err
    report = json.loads(out)
    assert report["usable"] is False and report["error_ja"].startswith("使えるテキストがありません")
    assert [f["outcome"] for f in report["files"]] == ["skipped"] * 3  # two files and the folder


def test_missing_tokenizer_still_reports_the_files(tmp_path):
    write(tmp_path, "a.txt", STORY)
    report = prepare(PrepareSettings(data=[str(tmp_path)], model=str(tmp_path / "no-model")))
    assert report.usable and report.files[0].used and report.totals.tokens is None
    assert "no such folder" in report.tokenizer_error and "not counted" in report.to_text()
    json.dumps(report.to_dict(), ensure_ascii=False)


# ---------------------------------------------------------------------------------------------- with the tiny model

def test_aozora_shift_jis_file(tmp_path, tiny_model):
    path = write(tmp_path, "hoshi.txt", AOZORA, encoding="cp932")
    report = prepare(PrepareSettings(data=[str(path)], model=tiny_model, block_size=16))
    assert report.usable, report.error
    file = report.files[0]
    assert file.encoding == "cp932" and file.format == "aozora" and file.used
    assert file.stripped["ruby"] == 2 and file.stripped["notes"] == 4
    text = report.documents[0].text
    for mark in ("《", "》", "｜", "［＃", "\ufffd", "底本", "テキスト中に現れる記号"):
        assert mark not in text and mark not in report.documents_preview[0].text
    t = report.totals
    assert t.tokens == t.train_tokens + t.heldout_tokens + t.dropped_tokens and t.train_blocks >= 1
    assert report.blocks_preview and report.blocks_preview[0].tokens == 16
    assert "cp932 (Shift_JIS)" in report.to_text()


def test_mixed_folder_lists_every_file_and_exits_0(tmp_path, tiny_model, capsys):
    folder = mixed_folder(tmp_path / "upload")
    code, out, err = run_cli(capsys, "--data", folder, "--model", tiny_model, "--block-size", 16, "--json")
    assert code == 0, err
    report = json.loads(out)
    outcome = {f["name"].rsplit("/", 1)[-1]: f for f in report["files"]}
    assert {k: v["outcome"] for k, v in outcome.items()} == {
        "empty.txt": "skipped", "faq.csv": "used", "faq.jsonl": "used", "notes.md": "used",
        "page.html": "used", "photo.png": "skipped"}
    assert "empty" in outcome["empty.txt"]["reason"] and "binary" in outcome["photo.png"]["reason"]
    assert outcome["photo.png"]["reason_ja"] and outcome["faq.jsonl"]["qa_pairs"] == 3
    assert outcome["page.html"]["stripped"]["html_boilerplate"] >= 3
    totals = report["totals"]
    assert totals["documents"] == 7 and totals["qa_pairs"] == 5 and totals["tokens"] > 0
    assert report["blocks_preview"][0]["text"]

    code, text, _ = run_cli(capsys, "--data", folder, "--model", tiny_model, "--block-size", 16)
    assert code == 0
    for name in ("empty.txt", "faq.csv", "faq.jsonl", "notes.md", "page.html", "photo.png"):
        assert name in text
    assert "looks binary (PNG image)" in text and "preview of the packed training blocks" in text


def test_too_short_says_how_much_more_is_needed(tmp_path, tiny_model, capsys):
    path = write(tmp_path, "short.txt", "短い文です。")
    code, out, err = run_cli(capsys, "--data", path, "--model", tiny_model, "--block-size", 128)
    assert code == 2 and "too short" in err and "add about" in err and "characters" in err
    assert "short.txt" in out  # the file report is printed before the error


def test_pasted_text_and_duplicates(tmp_path, tiny_model):
    write(tmp_path, "a.txt", STORY * 3)
    report = prepare(PrepareSettings(data=[str(tmp_path)], texts=[STORY * 3, "貼り付けた文章。" * 20],
                                     model=tiny_model, block_size=16))
    assert report.totals.duplicates == 1 and report.totals.documents == 2
    assert [f.outcome for f in report.files] == ["used", "skipped", "used"]


def test_qa_pairs_train_with_the_question_masked(tmp_path, tiny_model):
    """Q&A through the same reader as training: question tokens carry label -100, answers are learned."""
    from finetune.models import load_tokenizer_for, resolve_source
    tokenizer, _ = load_tokenizer_for(resolve_source(tiny_model))
    path = write(tmp_path, "faq.jsonl", "\n".join(json.dumps(x, ensure_ascii=False) for x in QA_LINES))
    docs = read_documents([path])
    assert [bool(d.prompt) for d in docs] == [True, True, True]
    data = build_dataset(docs, tokenizer, block_size=8, heldout_fraction=0)
    expected_ids, expected_labels = [], []
    for d in docs:
        prompt, answer = encode_document(tokenizer, d.prompt), encode_document(tokenizer, d.text)
        expected_ids += prompt + answer + [tokenizer.eos_token_id]
        expected_labels += [IGNORE] * len(prompt) + answer + [tokenizer.eos_token_id]
    n = data.train_blocks.numel()
    assert data.train_blocks.flatten().tolist() == expected_ids[:n]
    assert data.train_labels.flatten().tolist() == expected_labels[:n]
    assert (data.train_labels == IGNORE).sum() > 0

    report = prepare(PrepareSettings(data=[str(path)], model=tiny_model, block_size=32, heldout=0), tokenizer)
    first = report.blocks_preview[0]
    assert first.masked_tokens > 0 and first.text.startswith("⟦質問") and "⟧" in first.text


def test_block_preview_drops_characters_cut_at_block_edges(tiny_model):
    from finetune.prepare import block_text
    from finetune.tokens import load_tokenizer
    tok, _ = load_tokenizer(tiny_model)
    ids = tok.encode("龘と龘", add_special_tokens=False)
    assert len(ids) >= 7  # 龘 is spelled by three byte tokens
    assert "\ufffd" not in block_text(tok, ids[1:-1], None)
    assert block_text(tok, ids[1:-1], None) == "と"
