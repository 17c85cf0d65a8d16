"""`prepare`: the report on the user's text, the CLI command, and Q&A pairs through to masked labels."""
import dataclasses
import json
from pathlib import Path

import pytest

from finetune.cli import main
from finetune.data import IGNORE, Document, build_dataset, read_documents, split_heldout
from finetune.errors import DataError
from finetune.prepare import PrepareSettings, needed_tokens, prepare, setting_help
from finetune.tokens import encode_document
from test_formats import AOZORA, STORY, TEAM_MT, mt_entry, write

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
                                 dict(max_file_mb=0), dict(preview=-1), dict(authors=["yama", ""])])
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


# ---------------------------------------------------------------------------------------------- blog exports, dump

EXPORTS = Path(__file__).resolve().parent / "data" / "exports"

# What `prepare --dump` writes for tests/data/exports with the default options: the published posts.
EXPECTED_DUMP = [
    {"source": "blogger.xml#3", "title": "オリオン座の三つ星", "date": "2019-02-10T21:30:00.000+09:00",
     "text": "冬の夜、南の空にオリオン座の三つ星がきれいに並んでいた。\n\n双眼鏡でのぞくと、三つ星の下にオリオン大星雲がぼんやり見えた。"
             "\n気温は氷点下−3°C。指先が冷たかった。"},
    {"source": "feed.atom#1", "title": "じゃがいもの芽かき", "date": "2022-04-29T06:30:00.000Z",
     "text": "芽が十センチほどに伸びたので、芽かきをした。\n\n残すのは太い芽を二本だけ。\n抜いた芽は畑のすみに積んでおいた。"},
    {"source": "hatena.export.txt#1", "title": "商店街の古本市", "date": "2021-10-03T18:00:00",
     "text": "日曜日の朝、駅前の商店街で古本市が開かれていた。\n\n一冊百円の箱から、古い町の地図が挟まった旅行記を見つけた。\n\n"
             "旅行記\n植物図鑑\n\n詳しくはを見てください & また来年。\n\n追記:地図の映画館は、駅の北口にあったそうです。"},
    {"source": "hatena.export.txt#3", "title": "川沿いの散歩道", "date": "2021-09-26T09:00:00",
     "text": "川沿いの道を歩くと、鷺が一羽じっと水面を見ていた。\n近づいても逃げなかった。\n\n帰りにパン屋で胡桃のパンを買った。"},
    {"source": "hugo-post.md", "title": "畑の一年をふりかえる", "date": "2023-12-30T10:00:00+09:00",
     "text": "今年は春の長雨で、じゃがいもが少し不作だった。\n\nかわりに秋のさつまいもは大豊作。来年は畝を一本増やす。\n\n"
             "じゃがいも:三十キロ\nさつまいも:五十キロ"},
    {"source": "jekyll-post.markdown", "title": "港の朝市", "date": "2022-08-07 07:30:00 +0900",
     "text": "日曜の朝、港の朝市に六時に行った。\n\n干物を焼く煙と、呼び込みの声でにぎやかだった。\n\n"
             "帰りの電車では、買ったみかんを一つ食べた。\nそのままの{{波括弧}}"},
    {"source": "medium/posts/2020-11-08_朝の散歩で見つけた小さな秋-3f2a1b0c9d8e.html", "title": "朝の散歩で見つけた小さな秋",
     "date": "2020-11-08T00:30:00.000Z",
     "text": "いつもの公園を歩いていたら、金木犀の香りがした。\n\n足もとには、どんぐりがたくさん落ちていた。\n\n明日も少し早起きしよう。"},
    {"source": "note.xml#1", "title": "雨の日の図書館で考えたこと", "date": "2024-02-18T20:15:00",
     "text": "雨の土曜日、久しぶりに市立図書館へ行った。\n\n窓ぎわの席は満席だった。\n雨音と紙の音だけが聞こえる。\n\n"
             "帰り道には雨が上がっていた。"},
    {"source": "wordpress.xml#1", "title": "自転車で湖を一周した話", "date": "2023-05-14T19:30:00",
     "text": "連休の最終日、湖の周回コースを走ってきた。一周はおよそ四十キロ。\n\n持っていったもの\n\n替えのチューブ\nおにぎり二個\n\n"
             "峠の茶屋の草団子は 一串¥150...🍡だった。店の案内もどうぞ。\n\n湖に\n風が渡る"},
    {"source": "wordpress.xml#2", "title": "喫茶店のナポリタン & プリン", "date": "2023-04-02T12:00:00",
     "text": "駅裏の喫茶店で、昔ながらのナポリタンを食べた。\n鉄板の上でまだ音を立てていた。\n\n食後の固めのプリンも絶品。\n\n"
             "また行きたい。"},
    {"source": "zenn-article.md", "title": "はじめての個人開発で学んだこと",
     "text": "小さな家計簿アプリを作って、三か月使ってみた。\n\nこの記事は個人の感想です。\n\nうまくいかなかったこと\n"
             "通知の設定が複雑になりすぎた。\n\n一番の学びは、毎日自分で使うことだった。\n\n使わない機能はすぐわかる。"},
]


def test_dump_is_the_document_list_that_is_packed(tmp_path, tiny_model):
    settings = PrepareSettings(data=[str(EXPORTS)], model=tiny_model, block_size=16, dump=str(tmp_path / "d.jsonl"))
    report = prepare(settings)
    assert report.usable and report.dump_file == str(tmp_path / "d.jsonl")
    records = [json.loads(line) for line in (tmp_path / "d.jsonl").read_text(encoding="utf-8").splitlines()]
    for record in records:
        record["source"] = Path(record["source"]).relative_to(EXPORTS).as_posix()
    assert records == EXPECTED_DUMP
    # the packed stream is these texts, each followed by one EOS, nothing else
    from finetune.models import load_tokenizer_for, resolve_source
    tokenizer, _ = load_tokenizer_for(resolve_source(tiny_model))
    expected_tokens = sum(len(encode_document(tokenizer, r["text"])) + 1 for r in EXPECTED_DUMP)
    assert report.totals.tokens == expected_tokens
    totals = report.totals
    assert totals.posts == 11 and totals.comments == 0
    assert totals.left_out == {"other": 3, "draft": 7, "page": 3, "comment": 4, "trash": 1, "trackback": 2,
                               "unapproved_comment": 1, "attachment": 1, "revision": 1}
    assert "blog posts: 11 posts and 0 comments used" in report.to_text()


def test_cli_data_flags_for_prepare_and_train(tmp_path, tiny_model, capsys):
    dump = tmp_path / "all.jsonl"
    code, out, err = run_cli(capsys, "--data", EXPORTS / "wordpress.xml", "--model", tiny_model, "--block-size", 16,
                             "--heldout", 0, "--include-drafts", "--include-comments", "--titles", "--dump", dump,
                             "--json")
    assert code == 0, err
    records = [json.loads(line) for line in dump.read_text(encoding="utf-8").splitlines()]
    assert [r["text"].split("\n")[0] for r in records] == [
        "自転車で湖を一周した話", "草団子の茶屋、私も行きました。", "喫茶店のナポリタン & プリン", "秋の峠(下書き)"]
    assert json.loads(out)["files"][0]["comments"] == 1

    from finetune.cli import build_parser, train_settings
    from finetune.runner import command_line
    from finetune.train import TrainSettings
    args = build_parser().parse_args(["train", "--data", str(EXPORTS), "--out", str(tmp_path / "run"),
                                      "--include-comments", "--titles", "--encoding", "cp932"])
    settings = train_settings(args)
    assert settings.reading.include_comments and settings.reading.titles and settings.reading.encoding == "cp932"
    again = TrainSettings(**json.loads(json.dumps(dataclasses.asdict(settings))))  # training_config.json, the worker
    assert again.reading == settings.reading
    assert "--encoding cp932 --include-comments --titles" in command_line(settings)


def test_prepare_shows_each_files_authors(tmp_path, tiny_model, capsys):
    team = write(tmp_path, "team.export.txt", TEAM_MT)
    solo = write(tmp_path, "solo.export.txt", mt_entry("Yama", "別の話", "別の日の記事。"))
    code, out, err = run_cli(capsys, "--data", team, solo, "--model", tiny_model, "--block-size", 8, "--json")
    assert code == 0, err
    files = {Path(f["name"]).name: f for f in json.loads(out)["files"]}
    assert files["team.export.txt"]["authors"] == {"Yama": 2, "田中": 1}
    assert files["solo.export.txt"]["authors"] == {"Yama": 1}
    code, text, _ = run_cli(capsys, "--data", team, solo, "--model", tiny_model, "--block-size", 8)
    shown = [line.strip() for line in text.splitlines() if line.strip().startswith("authors:")]
    assert shown == ["authors: Yama 2, 田中 1"]   # a line only for a file with 2+ authors
    assert "warning: posts by 2 authors: Yama 2, 田中 1 (keep one with --author NAME)" in text
    code, text, _ = run_cli(capsys, "--data", team, "--model", tiny_model, "--block-size", 8, "--author", "田中",
                            "--json")
    report = json.loads(text)
    assert report["totals"]["posts"] == 2 and report["totals"]["left_out"]["other_author"] == 2   # Yama's two
    assert not any("keep one with" in w for w in report["files"][0]["warnings"])
    assert PrepareSettings(data=["x"], authors="yama").read_options().authors == ("yama",)
