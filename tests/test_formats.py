"""Reading real-world inputs: encodings, Aozora Bunko text, HTML, Markdown, records, zips, and bad input."""
import io
import json
import zipfile
from pathlib import Path

import pytest

from finetune.data import read_documents
from finetune.errors import DataError
from finetune.formats import (ReadOptions, decoded_text, normalized, read_inputs, Skip)

# Original sample text (written for these tests).
STORY = "港町の坂道を、少年は毎朝かけ上がった。\n\n丘の上のパン屋では、焼きたての匂いが風にのって流れてくる。"


def write(folder, name, content, encoding="utf-8"):
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode(encoding))
    return path


def only(results):
    assert len(results) == 1, [r.report for r in results]
    return results[0]


def read_one(path, **options):
    return only(read_inputs([path], options=ReadOptions(**options)))


# ---------------------------------------------------------------------------------------------- encodings

@pytest.mark.parametrize("codec,reported", [
    ("utf-8", "utf-8"), ("utf-8-sig", "utf-8-sig"), ("utf-16", "utf-16"), ("utf-16-le-bom", "utf-16"),
    ("utf-16-be-bom", "utf-16"), ("cp932", "cp932"), ("euc-jp", "euc-jp"), ("iso2022_jp", "iso-2022-jp")])
def test_every_encoding_round_trips(tmp_path, codec, reported):
    if codec == "utf-16-le-bom":
        raw = b"\xff\xfe" + STORY.encode("utf-16-le")
    elif codec == "utf-16-be-bom":
        raw = b"\xfe\xff" + STORY.encode("utf-16-be")
    else:
        raw = STORY.encode(codec)
    result = read_one(write(tmp_path, "story.txt", raw))
    assert result.report.used and result.report.encoding == reported
    assert [d.text for d in result.documents] == [STORY]
    assert result.documents[0].encoding == reported


def test_encoding_override_wins_and_is_strict(tmp_path):
    path = write(tmp_path, "story.txt", STORY, encoding="euc-jp")
    assert read_one(path, encoding="euc-jp").documents[0].text == STORY
    assert read_one(path, encodings={"story.txt": "euc-jp"}).report.encoding == "euc-jp"
    wrong = read_one(path, encoding="utf-8").report
    assert not wrong.used and "not valid utf-8" in wrong.reason and "position 0" in wrong.reason


def test_doubtful_decodings_are_reported_not_guessed(tmp_path):
    # Western text in cp1252 happens to be valid cp932, but reads as kanji soup without any kana.
    western = write(tmp_path, "menu.txt", "Crème brûlée à la française, très délicieuse".encode("cp1252"))
    report = read_one(western).report
    assert not report.used and report.reason_code in ("doubtful", "undecodable")
    # UTF-8 read as cp1252 and saved again as UTF-8: classic mojibake.
    garbled = STORY.encode("utf-8").decode("cp1252", errors="ignore")
    report = read_one(write(tmp_path, "garbled.txt", garbled)).report
    assert not report.used and report.reason_code == "doubtful" and "cp1252" in report.reason
    assert report.reason_ja
    # UTF-8 read as Shift_JIS and saved again as UTF-8 (縺薙ｓ…).
    garbled = STORY.encode("utf-8").decode("cp932", errors="replace")
    report = read_one(write(tmp_path, "garbled2.txt", garbled)).report
    assert not report.used and report.reason_code == "doubtful" and "cp932" in report.reason


def test_replacement_characters_are_removed_or_refused(tmp_path):
    few = read_one(write(tmp_path, "few.txt", STORY * 5 + "\ufffd")).report
    assert few.used and few.stripped["replacement_characters"] == 1 and "\ufffd" in few.warnings[0]
    many = read_one(write(tmp_path, "many.txt", STORY.replace("の", "\ufffd"))).report
    assert not many.used and many.reason_code == "doubtful"


def test_kanji_only_shift_jis_is_accepted(tmp_path):
    result = read_one(write(tmp_path, "names.csv", "text\n東京都千代田区\n大阪府北区\n", encoding="cp932"))
    assert result.report.encoding == "cp932" and [d.text for d in result.documents] == ["東京都千代田区", "大阪府北区"]


def test_undecodable_bytes_name_the_problem(tmp_path):
    report = read_one(write(tmp_path, "latin.txt", "caf\xe9 \x81\xff".encode("latin-1"))).report
    assert not report.used and report.reason_code == "undecodable" and "decode" in report.reason


def test_decoded_text_refuses_binary():
    with pytest.raises(Skip, match="PDF"):
        decoded_text(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")


# ---------------------------------------------------------------------------------------------- Aozora

AOZORA = """星降る村の話
架空太郎

-------------------------------------------------------
【テキスト中に現れる記号について】

《》：ルビ
（例）星屑《ほしくず》

｜：ルビの付く文字列の始まりを特定する記号
（例）夜の｜見張り番《みはりばん》

［＃］：入力者注　主に外字の説明や、傍点の位置の指定
（例）※［＃「言＋虚」、第4水準2-88-74］
-------------------------------------------------------

［＃５字下げ］一［＃「一」は中見出し］

　山あいの村には、毎晩のように星屑《ほしくず》が降った。
　村の｜見張り番《みはりばん》は、古い※［＃「木＋色」、U+6A5A］の杖をついて坂をのぼる。
　その杖には※［＃「言＋虚」、第4水準2-88-74］という字が彫られていた、と子どもたちは噂した。
　見慣れない※［＃「糸＋圭」、ページ数-行数］の模様もあった。［＃「模様」に傍点］
［＃改ページ］

　朝になると、降った星はみな草の露に変わっていた。


底本：「架空の童話集」架空出版
　　　1999（平成11）年1月1日第1刷発行
入力：だれか
校正：だれか
このファイルは、テスト用に書かれた架空の作品です。
"""


def test_aozora_shift_jis_file_is_cleaned(tmp_path):
    result = read_one(write(tmp_path, "hoshi.txt", AOZORA, encoding="cp932"))
    report, text = result.report, result.documents[0].text
    assert report.used and report.encoding == "cp932" and report.format == "aozora"
    for mark in ("《", "》", "｜", "［＃", "[#", "\ufffd", "底本", "テキスト中に現れる記号", "架空太郎", "入力：", "---"):
        assert mark not in text, mark
    assert "星屑が降った" in text and "村の見張り番は" in text
    assert "橚の杖" in text          # U+ code given: the character is used
    assert "譃という字" in text       # JIS X 0213 plane-row-cell given: the character is used
    assert "見慣れないの模様" in text  # only a description: the note is dropped
    assert text.startswith("一\n")   # the heading's layout notes go, the heading stays
    assert len([line for line in text.split("\n") if line.strip()]) == 6  # paragraphs kept
    assert report.stripped["ruby"] == 2
    assert report.stripped["gaiji_resolved"] == 2 and report.stripped["gaiji_dropped"] == 1
    assert report.stripped["notes"] == 4
    assert report.stripped["header_lines"] > 10 and report.stripped["footer_lines"] >= 5


def test_plain_double_angle_brackets_are_not_taken_for_ruby(tmp_path):
    text = "新刊《季刊・港の灯》を読んだ。"
    assert read_one(write(tmp_path, "a.txt", text)).documents[0].text == text


# ---------------------------------------------------------------------------------------------- HTML, Markdown

PAGE = """<!DOCTYPE html><html><head><title>サイト名</title><style>p { color: red }</style>
<script>document.write("<p>広告</p>")</script></head><body>
<header><nav><a href="/">トップ</a><a href="/about">概要</a></nav></header>
<div class="breadcrumb">トップ &gt; 日記</div>
<main><article><header><h1>雨の日の図書館</h1></header>
<p>午後から雨になったので、駅前の図書館で
雑誌を読んだ。<ruby>栞<rp>(</rp><rt>しおり</rt><rp>)</rp></ruby>をはさんで帰った。</p>
<p>帰り道の水たまりに、街灯がゆれて&amp;映っていた。<br>明日は晴れるらしい。</p>
<footer>タグ：日記</footer></article></main>
<aside>人気記事ランキング</aside><footer>&copy; 架空のブログ</footer></body></html>"""


def test_html_keeps_the_main_text_only(tmp_path):
    result = read_one(write(tmp_path, "page.html", PAGE))
    text = result.documents[0].text
    assert text == ("雨の日の図書館\n\n午後から雨になったので、駅前の図書館で雑誌を読んだ。栞をはさんで帰った。\n\n"
                    "帰り道の水たまりに、街灯がゆれて&映っていた。\n明日は晴れるらしい。")
    assert result.report.stripped["html_boilerplate"] >= 5 and result.report.stripped["ruby"] == 1


def test_html_without_main_uses_the_body(tmp_path):
    page = "<html><body><nav>メニュー</nav><p>本文だけが残る。</p><script>x()</script></body></html>"
    assert read_one(write(tmp_path, "p.htm", page)).documents[0].text == "本文だけが残る。"


MARKDOWN = """---
title: 旅のメモ
---
# 一日目

**朝**は*市場*へ行き、[魚の店](https://example.com/fish)を見た。`メモ`も取った。

1. 干物を買う
2. 絵はがきを送る

> 旅先では早起きが得をする。

| 場所 | 時間 |
|------|------|
| 市場 | 朝 |

```python
print("code")
```
![写真](photo.jpg)
"""


def test_markdown_becomes_plain_text(tmp_path):
    path = write(tmp_path, "memo.md", MARKDOWN)
    result = read_one(path)
    assert result.documents[0].text == ("一日目\n\n朝は市場へ行き、魚の店を見た。メモも取った。\n\n干物を買う\n絵はがきを送る\n\n"
                                        "旅先では早起きが得をする。\n\n場所 時間\n市場 朝")
    assert result.report.stripped["code_blocks"] == 1
    assert 'print("code")' in read_one(path, keep_code=True).documents[0].text


# ---------------------------------------------------------------------------------------------- normalization

def test_normalization_nfkc_newlines_blank_lines_controls():
    raw = "ＡＢＣ１２３ ｶﾀｶﾅ\r\n\r\n\r\n\r\n次の段落\x07です。  \r終わり\u200b\n\n\n"
    assert normalized(raw, nfkc=True) == "ABC123 カタカナ\n\n次の段落です。\n終わり"
    assert normalized(raw, nfkc=False) == "ＡＢＣ１２３ ｶﾀｶﾅ\n\n次の段落です。\n終わり"


def test_exact_duplicates_are_dropped_and_counted(tmp_path):
    write(tmp_path, "a.txt", STORY)
    write(tmp_path, "b.txt", STORY + "\n\n\n")   # the same after cleanup
    write(tmp_path, "c.txt", "別の文書です。")
    results = read_inputs([tmp_path])
    assert [r.report.outcome for r in results] == ["used", "skipped", "used"]
    assert results[1].report.reason_code == "duplicate" and "a.txt" in results[1].report.reason
    assert len(read_documents([tmp_path])) == 2


# ---------------------------------------------------------------------------------------------- Q&A records

@pytest.mark.parametrize("question_key,answer_key", [
    ("question", "answer"), ("instruction", "output"), ("prompt", "response"), ("質問", "回答"),
    ("Question", "Answer")])
def test_jsonl_question_answer_aliases(tmp_path, question_key, answer_key):
    lines = [{question_key: "配送にかかる日数は？", answer_key: "通常は三日ほどでお届けします。"},
             {question_key: "返品できますか？", answer_key: "未開封なら一週間以内に承ります。"}]
    path = write(tmp_path, "faq.jsonl", "\n".join(json.dumps(x, ensure_ascii=False) for x in lines))
    result = read_one(path)
    assert result.report.qa_pairs == 2 and result.report.format == "jsonl"
    doc = result.documents[0]
    assert doc.prompt == "質問：配送にかかる日数は?\n回答：" and doc.text == "通常は三日ほどでお届けします。"


def test_alpaca_input_is_added_to_the_instruction(tmp_path):
    record = {"instruction": "次の文を丁寧にしてください。", "input": "明日来て。", "output": "明日お越しください。"}
    doc = read_one(write(tmp_path, "a.jsonl", json.dumps(record, ensure_ascii=False))).documents[0]
    assert "明日来て。" in doc.prompt and doc.text == "明日お越しください。"


def test_chat_messages_become_pairs(tmp_path):
    chat = {"messages": [{"role": "system", "content": "あなたは店員です。"},
                         {"role": "user", "content": "おすすめは？"}, {"role": "assistant", "content": "塩パンです。"},
                         {"role": "user", "content": "値段は？"}, {"role": "assistant", "content": "百八十円です。"}]}
    result = read_one(write(tmp_path, "chat.jsonl", json.dumps(chat, ensure_ascii=False)))
    assert [(d.prompt, d.text) for d in result.documents] == [
        ("質問：おすすめは?\n回答：", "塩パンです。"), ("質問：値段は?\n回答：", "百八十円です。")]
    assert result.report.warnings  # several turns: said how they were split


def test_json_file_with_a_list_of_records(tmp_path):
    data = {"data": [{"prompt": "色は？", "completion": "青です。"}, {"text": "ふつうの文章もひとつ。"}]}
    result = read_one(write(tmp_path, "set.json", json.dumps(data, ensure_ascii=False)))
    assert result.report.documents == 2 and result.report.qa_pairs == 1


def test_csv_and_tsv_records(tmp_path):
    csv_text = '質問,回答\n駐輪場は？,"店の裏にあります。\n二十台まで。"\n,答えだけの行\n'
    result = read_one(write(tmp_path, "faq.csv", csv_text))
    assert [d.text for d in result.documents] == ["店の裏にあります。\n二十台まで。"]
    assert "row 3" in result.report.warnings[0]   # the row without a question is reported
    tsv = read_one(write(tmp_path, "notes.tsv", "id\ttext\n1\t一行目の文書。\n2\t二行目の文書。\n"))
    assert [d.text for d in tsv.documents] == ["一行目の文書。", "二行目の文書。"]


def test_csv_with_cp932_is_detected(tmp_path):
    result = read_one(write(tmp_path, "faq.csv", "question,answer\n定休日は？,水曜日です。\n", encoding="cp932"))
    assert result.report.encoding == "cp932" and result.documents[0].text == "水曜日です。"


# ---------------------------------------------------------------------------------------------- bad input

def test_each_bad_file_gets_a_specific_reason_in_two_languages(tmp_path):
    write(tmp_path, "empty.txt", b"")
    write(tmp_path, "blank.txt", " \n\u3000\n\t\n")
    write(tmp_path, "image.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00")
    write(tmp_path, "scan.pdf", b"%PDF-1.4\n%\xc7\xec\x8f\xa2\n")
    write(tmp_path, "tool.exe", b"MZ\x90\x00\x03\x00\x00\x00\x04\x00")
    write(tmp_path, "prog", b"\x7fELF\x02\x01\x01\x00")
    write(tmp_path, "all-bad.jsonl", "{not json}\n[1, 2\n")
    write(tmp_path, "people.csv", "名前,年齢\n花子,30\n")
    write(tmp_path, "code.py", "print('hello')\n")
    write(tmp_path, "good.txt", STORY)
    reports = {r.report.name.rsplit("/", 1)[-1]: r.report for r in read_inputs([tmp_path])}
    expected = {"empty.txt": "empty", "blank.txt": "whitespace", "image.png": "PNG image", "scan.pdf": "PDF",
                "tool.exe": "executable", "prog": "executable", "all-bad.jsonl": "line 1 is not JSON",
                "people.csv": "no recognisable columns (found: 名前, 年齢)", "code.py": "unsupported file type .py"}
    for name, words in expected.items():
        report = reports[name]
        assert not report.used and words in report.reason, (name, report.reason)
        assert report.reason_ja and report.reason_code and "\n" not in report.reason
    assert reports["good.txt"].used


def test_a_bad_jsonl_line_is_named_and_the_rest_is_used(tmp_path):
    lines = ['{"question": "一つ目？", "answer": "はい。"}', '{"question": "二つ目？" "answer": "いいえ。"}',
             '{"question": "三つ目？", "answer": "たぶん。"}']
    result = read_one(write(tmp_path, "faq.jsonl", "\n".join(lines)))
    assert result.report.used and result.report.qa_pairs == 2
    assert "line 2" in result.report.warnings[0] and "2行目" in result.report.warnings_ja[0]


def test_file_over_the_size_limit(tmp_path):
    report = read_one(write(tmp_path, "big.txt", "あ" * 400_000), max_file_mb=1).report
    assert not report.used and "over the 1 MB limit" in report.reason


def test_folder_with_nothing_usable_and_missing_path(tmp_path):
    write(tmp_path, "docs/empty.txt", b"")
    write(tmp_path, "docs/.hidden.txt", STORY)  # hidden files are not read
    results = read_inputs([tmp_path / "docs", tmp_path / "missing.txt"])
    assert [r.report.reason_code for r in results] == ["empty", "container_unusable", "missing"]
    with pytest.raises(DataError, match="nothing usable in this folder"):
        read_documents([tmp_path / "docs"])


def test_read_documents_skips_bad_files_when_others_are_usable(tmp_path):
    write(tmp_path, "good.txt", STORY)
    write(tmp_path, "bad.png", b"\x89PNG\r\n\x1a\n\x00")
    assert [d.text for d in read_documents([tmp_path])] == [STORY]
    with pytest.raises(DataError, match="bad.png: looks binary"):
        read_documents([tmp_path / "bad.png"])


def test_pasted_text_is_read_like_a_file():
    results = read_inputs(texts=["北の｜岬町《みさきちょう》は風が強い。", "  "])
    assert results[0].documents[0].text == "北の岬町は風が強い。" and results[0].report.name == "pasted text 1"
    assert results[1].report.reason_code == "blank"


# ---------------------------------------------------------------------------------------------- zips

def zip_bytes(members: dict) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)
    return buffer.getvalue()


def test_zip_members_are_read_in_memory(tmp_path):
    archive = zip_bytes({"texts/a.txt": STORY.encode("cp932"), "texts/b.md": "# 題\n本文です。".encode(),
                         "__MACOSX/texts/._a.txt": b"\x00\x05\x16\x07", "texts/pic.png": b"\x89PNG\r\n\x1a\n\x00"})
    results = read_inputs([write(tmp_path, "upload.zip", archive)])
    names = [r.report.name.split("upload.zip/")[1] for r in results]
    assert names == ["texts/a.txt", "texts/b.md", "texts/pic.png"]
    assert [r.report.outcome for r in results] == ["used", "used", "skipped"]
    assert results[0].report.encoding == "cp932" and results[0].documents[0].text == STORY
    assert not (tmp_path / "texts").exists()  # nothing extracted to disk


def test_zip_member_names_in_cp932_are_read(tmp_path):
    # As Japanese Windows writes them: the name in cp932 bytes, without the UTF-8 flag.
    archive = zip_bytes({"abcd.txt": STORY.encode()}).replace(b"abcd.txt", "日記.txt".encode("cp932"))
    assert read_inputs([write(tmp_path, "u.zip", archive)])[0].report.name.endswith("u.zip/日記.txt")


def test_zip_member_names_in_utf8_without_the_flag_are_read(tmp_path):
    # As Info-ZIP on Linux and macOS write them: UTF-8 bytes, without the UTF-8 flag.
    archive = zip_bytes({"abcdefghijkl.txt": STORY.encode()}).replace(b"abcdefghijkl.txt", "朝の日記.txt".encode())
    assert read_inputs([write(tmp_path, "u.zip", archive)])[0].report.name.endswith("u.zip/朝の日記.txt")


@pytest.mark.parametrize("member", ["../escape.txt", "/etc/evil.txt", "a/../../b.txt", "C:/x.txt", "..\\win.txt"])
def test_zip_with_names_outside_its_folder_is_refused(tmp_path, member):
    archive = zip_bytes({"ok.txt": STORY.encode(), member: STORY.encode()})
    result = only(read_inputs([write(tmp_path, "evil.zip", archive)]))
    assert not result.report.used and result.report.reason_code == "zip_unsafe" and not result.documents


def test_zip_nested_too_deep(tmp_path):
    level3 = zip_bytes({"deep.txt": "深いところの文書。".encode()})
    level2 = zip_bytes({"level3.zip": level3, "two.txt": "二段目の文書。".encode()})
    level1 = zip_bytes({"level2.zip": level2})
    results = read_inputs([write(tmp_path, "level1.zip", level1)])
    outcome = {r.report.name.rsplit("/", 1)[-1]: r.report for r in results}
    assert outcome["two.txt"].used
    assert outcome["level3.zip"].reason_code == "zip_too_deep"


def test_zip_bomb_is_refused_before_decompressing(tmp_path):
    archive = zip_bytes({"zeros.txt": b"a" * (3 * 1024 * 1024)})
    assert len(archive) < 50_000
    result = only(read_inputs([write(tmp_path, "bomb.zip", archive)], options=ReadOptions(max_zip_mb=1)))
    assert result.report.reason_code == "zip_bomb" and "1 MB" in result.report.reason


def test_corrupt_zip(tmp_path):
    result = only(read_inputs([write(tmp_path, "broken.zip", b"PK\x03\x04 this is not really a zip")]))
    assert result.report.reason_code == "zip_bad"


# ---------------------------------------------------------------------------------------------- blog exports

DATA = Path(__file__).resolve().parent / "data"
EXPORTS = DATA / "exports"
PAGES = DATA / "pages"


def exported(name, **options):
    return read_one(EXPORTS / name, **options)


def texts(result):
    return [d.text for d in result.documents]


def test_hatena_movable_type_export_gives_the_published_posts_only():
    result = exported("hatena.export.txt")
    report = result.report
    assert report.format == "movable-type" and report.used and report.posts == 2 and report.comments == 0
    assert texts(result) == [
        "日曜日の朝、駅前の商店街で古本市が開かれていた。\n\n一冊百円の箱から、古い町の地図が挟まった旅行記を見つけた。\n\n"
        "旅行記\n植物図鑑\n\n詳しくはを見てください & また来年。\n\n追記:地図の映画館は、駅の北口にあったそうです。",
        "川沿いの道を歩くと、鷺が一羽じっと水面を見ていた。\n近づいても逃げなかった。\n\n帰りにパン屋で胡桃のパンを買った。"]
    assert [(d.name.rsplit("/", 1)[-1], d.title, d.date) for d in result.documents] == [
        ("hatena.export.txt#1", "商店街の古本市", "2021-10-03T18:00:00"),
        ("hatena.export.txt#3", "川沿いの散歩道", "2021-09-26T09:00:00")]
    assert report.left_out == {"comment": 1, "draft": 1, "trackback": 1}
    assert "--include-drafts" in report.warnings[0] and "下書きも使う" in report.warnings_ja[0]
    assert report.stripped["code_blocks"] == 1 and report.stripped["hatena_notation"] == 2


def test_hatena_export_with_drafts_comments_titles_and_code():
    result = exported("hatena.export.txt", include_drafts=True, include_comments=True, titles=True, keep_code=True)
    assert [d.kind for d in result.documents] == ["post", "comment", "post", "post"]
    assert result.report.posts == 3 and result.report.comments == 1 and result.report.left_out == {"trackback": 1}
    post, comment, draft, _ = result.documents
    assert post.text.startswith("商店街の古本市\n日曜日の朝") and 'print("古本")' in post.text
    assert comment.text == "わたしもその映画館に通っていました。\n懐かしいです。" and comment.date == "2021-10-04T08:12:00"
    assert draft.text == "書きかけの雲の話\nまだ書きかけの下書きです。"


HATENA_RENDERED = """AUTHOR: kaze
TITLE: 目次と脚注のある記事
STATUS: Publish
CONVERT BREAKS: 0
DATE: 04/02/2024 08:15:00
-----
BODY:
<ul class="table-of-contents">
    <li><a href="#桜">川沿いの桜</a></li>
</ul>
<h3 id="桜">川沿いの桜</h3>
<p>帰り道に古本屋を見つけました<a href="#f-1a2b" name="fn-1a2b" title="店主は猫好き">*1</a>。</p>
<p><iframe src="https://hatenablog-parts.com/embed?url=x" class="embed-card embed-webcard"></iframe><cite class="hatena-citation"><a href="https://example.jp/">example.jp</a></cite></p>
<div class="footnote">
<p class="footnote"><a href="#fn-1a2b" name="f-1a2b" class="footnote-number">*1</a><span class="footnote-delimiter">:</span><span class="footnote-text">店主は猫好き</span></p>
</div>
-----
--------
"""


def test_hatena_bodies_as_the_editor_renders_them(tmp_path):
    # Hatena exports [:contents], embeds and footnotes already rendered: the table of contents (the
    # headings again), the embed's citation (an address) and the *1 marks go; the note's text stays.
    result = read_one(write(tmp_path, "blog.export.txt", HATENA_RENDERED))
    assert texts(result) == ["川沿いの桜\n\n帰り道に古本屋を見つけました。\n\n店主は猫好き"]
    assert result.report.stripped["footnote_marks"] == 3


def test_wordpress_footnotes_come_from_the_post_meta(tmp_path):
    item = ('<item><title>脚注</title><content:encoded><![CDATA[<!-- wp:paragraph --><p>本文です<sup data-fn="a1" '
            'class="fn"><a href="#a1" id="a1-link">1</a></sup>。</p><!-- /wp:paragraph --><!-- wp:footnotes /-->]]>'
            '</content:encoded><wp:status>publish</wp:status><wp:post_type>post</wp:post_type><wp:postmeta>'
            '<wp:meta_key>footnotes</wp:meta_key><wp:meta_value><![CDATA[[{"content":"注の<em>本文</em>です。",'
            '"id":"a1"}]]]></wp:meta_value></wp:postmeta></item>')
    export = ('<?xml version="1.0" encoding="UTF-8"?><rss version="2.0" xmlns:content="http://purl.org/rss/1.0/'
              'modules/content/" xmlns:wp="http://wordpress.org/export/1.2/"><channel>' + item + '</channel></rss>')
    assert texts(read_one(write(tmp_path, "site.xml", export))) == ["本文です。\n\n注の本文です。"]


def test_markdown_footnotes_dates_and_jekyll_drafts(tmp_path):
    qiita = ("---\ntitle: メモ\nprivate: false\nupdated_at: '2024-01-10T12:00:00+09:00'\n---\n"
             "脚注を使います[^1]。\n\n[^1]: 脚注の本文です。\n[site]: https://example.jp\n")
    result = read_one(write(tmp_path, "qiita.md", qiita))
    assert texts(result) == ["脚注を使います。\n\n脚注の本文です。"]
    assert result.documents[0].date == "2024-01-10T12:00:00+09:00"  # Qiita CLI's files have no other date
    (tmp_path / "_drafts").mkdir()
    draft = write(tmp_path / "_drafts", "idea.md", "---\nlayout: post\ntitle: 構想\n---\nまだ構想です。\n")
    assert read_one(draft).report.left_out == {"draft": 1}
    assert texts(read_one(draft, include_drafts=True)) == ["まだ構想です。"]


WORDPRESS_POSTS = [
    "連休の最終日、湖の周回コースを走ってきた。一周はおよそ四十キロ。\n\n持っていったもの\n\n替えのチューブ\nおにぎり二個\n\n"
    "峠の茶屋の草団子は 一串¥150...🍡だった。店の案内もどうぞ。\n\n湖に\n風が渡る",
    "駅裏の喫茶店で、昔ながらのナポリタンを食べた。\n鉄板の上でまだ音を立てていた。\n\n食後の固めのプリンも絶品。\n\nまた行きたい。"]


def test_wordpress_export_blocks_shortcodes_cdata_and_entities():
    result = exported("wordpress.xml")
    assert result.report.format == "wordpress" and texts(result) == WORDPRESS_POSTS
    assert [(d.title, d.date) for d in result.documents] == [
        ("自転車で湖を一周した話", "2023-05-14T19:30:00"), ("喫茶店のナポリタン & プリン", "2023-04-02T12:00:00")]
    assert result.report.left_out == {"comment": 1, "unapproved_comment": 1, "trackback": 1, "draft": 1, "page": 1,
                                      "attachment": 1, "revision": 1, "other": 1}
    assert result.report.stripped["shortcodes"] == 3 and result.report.stripped["embeds"] == 1


def test_wordpress_export_with_comments_drafts_and_code():
    result = exported("wordpress.xml", include_comments=True, include_drafts=True, keep_code=True)
    assert [d.kind for d in result.documents] == ["post", "comment", "post", "post"]
    assert result.documents[1].text == "草団子の茶屋、私も行きました。\n峠の上りはきついですよね。"
    assert result.documents[3].text == "まだ走っていない峠の計画。" and result.documents[3].date == ""
    assert "tire_pressure = 6.5" in result.documents[0].text and 'order = "プリン"' in result.documents[2].text
    # spam, pingbacks, pages, attachments, revisions and menus never come back
    assert result.report.left_out == {"unapproved_comment": 1, "trackback": 1, "page": 1, "attachment": 1,
                                      "revision": 1, "other": 1}


def test_note_export_is_wordpress_shaped():
    result = exported("note.xml")
    assert result.report.format == "wordpress" and result.report.left_out == {"draft": 1}
    assert texts(result) == ["雨の土曜日、久しぶりに市立図書館へ行った。\n\n窓ぎわの席は満席だった。\n雨音と紙の音だけが聞こえる。\n\n"
                             "帰り道には雨が上がっていた。"]


def test_blogger_exports_old_and_new():
    old = exported("blogger.xml")
    assert old.report.format == "atom" and old.report.left_out == {"other": 2, "draft": 1, "page": 1, "comment": 1}
    assert texts(old) == ["冬の夜、南の空にオリオン座の三つ星がきれいに並んでいた。\n\n双眼鏡でのぞくと、三つ星の下にオリオン大星雲が"
                          "ぼんやり見えた。\n気温は氷点下−3°C。指先が冷たかった。"]
    new = exported("feed.atom", include_comments=True)
    assert new.report.left_out == {"draft": 1, "trash": 1, "page": 1}
    assert [(d.kind, d.text) for d in new.documents] == [
        ("post", "芽が十センチほどに伸びたので、芽かきをした。\n\n残すのは太い芽を二本だけ。\n抜いた芽は畑のすみに積んでおいた。"),
        ("comment", "うちも今週芽かきしました。")]


def test_markdown_posts_with_front_matter():
    hugo = exported("hugo-post.md")
    assert (hugo.documents[0].title, hugo.documents[0].date) == ("畑の一年をふりかえる", "2023-12-30T10:00:00+09:00")
    assert texts(hugo) == ["今年は春の長雨で、じゃがいもが少し不作だった。\n\nかわりに秋のさつまいもは大豊作。来年は畝を一本増やす。"
                           "\n\nじゃがいも:三十キロ\nさつまいも:五十キロ"]
    assert 'fmt.Println("harvest")' in exported("hugo-post.md", keep_code=True).documents[0].text
    jekyll = exported("jekyll-post.markdown")
    assert texts(jekyll) == ["日曜の朝、港の朝市に六時に行った。\n\n干物を焼く煙と、呼び込みの声でにぎやかだった。\n\n"
                             "帰りの電車では、買ったみかんを一つ食べた。\nそのままの{{波括弧}}"]
    zenn = exported("zenn-article.md", titles=True)
    assert texts(zenn) == ["はじめての個人開発で学んだこと\n小さな家計簿アプリを作って、三か月使ってみた。\n\nこの記事は個人の感想です。"
                           "\n\nうまくいかなかったこと\n通知の設定が複雑になりすぎた。\n\n一番の学びは、毎日自分で使うことだった。"
                           "\n\n使わない機能はすぐわかる。"]  # the footnote's text, without its [^1]
    qiita = exported("qiita-draft.md").report
    assert not qiita.used and qiita.reason_code == "only_left_out" and qiita.left_out == {"draft": 1}
    assert texts(exported("qiita-draft.md", include_drafts=True)) == ["まだ人に見せるつもりのないメモです。"]


def test_medium_export_folder_posts_only():
    results = {r.report.name.rsplit("/", 1)[-1]: r for r in read_inputs([EXPORTS / "medium"])}
    post = results["2020-11-08_朝の散歩で見つけた小さな秋-3f2a1b0c9d8e.html"]
    assert post.report.format == "medium" and texts(post) == [
        "いつもの公園を歩いていたら、金木犀の香りがした。\n\n足もとには、どんぐりがたくさん落ちていた。\n\n明日も少し早起きしよう。"]
    assert (post.documents[0].title, post.documents[0].date) == ("朝の散歩で見つけた小さな秋", "2020-11-08T00:30:00.000Z")
    assert results["draft_冬の計画-9a8b7c6d5e4f.html"].report.left_out == {"draft": 1}
    assert results["profile.html"].report.reason_code == "not_a_post"


def test_a_zip_holding_a_mix_of_exports(tmp_path):
    members = {name: (EXPORTS / name).read_bytes() for name in ("hatena.export.txt", "wordpress.xml", "zenn-article.md")}
    members |= {f"medium-export/{p.relative_to(EXPORTS / 'medium')}": p.read_bytes()
                for p in (EXPORTS / "medium").rglob("*.html")}
    members["memo.txt"] = STORY.encode("cp932")
    members["sitemap.xml"] = b'<?xml version="1.0"?><urlset><url><loc>https://example.com/</loc></url></urlset>'
    results = read_inputs([write(tmp_path, "blog.zip", zip_bytes(members))],
                          options=ReadOptions(include_comments=True))
    by_name = {r.report.name.split("blog.zip/")[1]: r.report for r in results}
    assert {n: (r.format, r.outcome, r.posts, r.comments) for n, r in by_name.items()} == {
        "hatena.export.txt": ("movable-type", "used", 2, 1),
        "medium-export/posts/2020-11-08_朝の散歩で見つけた小さな秋-3f2a1b0c9d8e.html": ("medium", "used", 1, 0),
        "medium-export/posts/draft_冬の計画-9a8b7c6d5e4f.html": ("medium", "skipped", 0, 0),
        "medium-export/profile/profile.html": ("html", "skipped", 0, 0),
        "memo.txt": ("text", "used", 0, 0),
        "sitemap.xml": ("xml", "skipped", 0, 0),
        "wordpress.xml": ("wordpress", "used", 2, 1),
        "zenn-article.md": ("markdown", "used", 1, 0)}
    assert by_name["sitemap.xml"].reason_code == "not_an_export"
    assert sum(len(r.documents) for r in results) == 9


def test_exports_are_recognised_by_content_whatever_their_name(tmp_path):
    export = (EXPORTS / "hatena.export.txt").read_bytes()
    assert read_one(write(tmp_path, "myblog.export", export)).report.format == "movable-type"
    assert read_one(write(tmp_path, "backup", (EXPORTS / "feed.atom").read_bytes())).report.posts == 1
    other = read_one(write(tmp_path, "notes.log", "ただのログです。\n")).report
    assert other.reason_code == "unsupported" and ".log" in other.reason


def test_xml_that_declares_entities_or_is_broken_is_refused(tmp_path):
    bomb = ('<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>'
            '<rss xmlns:wp="http://wordpress.org/export/1.2/"><channel><item><title>&b;</title></item></channel></rss>')
    assert read_one(write(tmp_path, "bomb.xml", bomb)).report.reason_code == "xml_entities"
    broken = '<rss xmlns:wp="http://wordpress.org/export/1.2/"><channel><item><title>途中で切れた'
    assert read_one(write(tmp_path, "cut.xml", broken)).report.reason_code == "bad_xml"


# ---------------------------------------------------------------------------------------------- exports as services write them

# Samples in the shapes the services' exports really have (formats documented in docs/formats.md):
# FC2's EUC-JP Movable Type file with CRLF lines, Movable Type 7's with a BOM and its block editor,
# WordPress's WXR 1.1 from the classic editor with every status and post type, note's zip, Blogger's
# Google Takeout, Medium's zip, and the folders of Hugo, Jekyll, Zenn and Qiita CLI sites.
SERVICES = DATA / "service_exports"


def service(name, **options):
    return read_one(SERVICES / name, **options)


def described(result):
    return [(d.kind, d.title, d.date, d.text) for d in result.documents]


FC2_POSTS = [
    ("post", "近所の図書館が新しくなった", "2013-04-07T22:15:40",
     "改装工事が終わって、近所の図書館が再開した。\n入口が広くなり、窓ぎわの閲覧席が増えていた。\n\n"
     "雑誌コーナーでは、昔よく読んでいた釣りの雑誌を見つけた。\n\n帰りに貸出カードも作り直した。"),
    ("comment", "", "2013-04-08T07:02:11", "うちの近くの図書館も改装中です。\n再開が楽しみです。"),
    ("comment", "", "2013-04-09T12:30:00", "窓ぎわの席、いいですね。"),
    ("post", "雨の日の過ごし方", "2013-03-20T09:05:00",
     "雨の日は家でパンを焼く。\n粉をこねていると、気持ちが落ち着く。\n\n焼き上がりを待つ間に、古い映画を一本見た。")]


def test_fc2_export_in_euc_jp_with_crlf_excerpts_keywords_and_several_comments():
    result = service("fc2.export.txt", include_comments=True)
    assert (result.report.format, result.report.encoding) == ("movable-type", "euc-jp")
    assert described(result) == FC2_POSTS  # EXCERPT and KEYWORDS are not text; each COMMENT is its own
    assert result.report.left_out == {"trackback": 1, "draft": 1}


def test_fc2_export_saved_as_shift_jis(tmp_path):
    raw = (SERVICES / "fc2.export.txt").read_bytes().decode("euc-jp").encode("cp932")
    result = read_one(write(tmp_path, "fc2-sjis.txt", raw), include_comments=True)
    assert result.report.encoding == "cp932" and described(result) == FC2_POSTS


def test_movable_type_7_export_block_editor_statuses_and_dates():
    # Given as UTF-8 explicitly, the BOM stays in the text: it must not hide the export.
    result = service("movabletype.export.txt", encoding="utf-8")
    assert result.report.format == "movable-type"
    assert described(result) == [
        ("post", "秋の文化祭", "2023-11-03T00:30:00",  # 12:30:00 AM; block_editor bodies are HTML
         "娘の学校の文化祭に行った。教室ごとに手作りの看板が並んでいた。\n\n三年生の劇は、最後に大きな拍手が起きた。"),
        ("post", "夜の散歩", "2023-11-05T21:15:00",
         "夕食のあと、川沿いを少し歩いた。\n月が明るくて、街灯がいらないほどだった。\n\n帰り道で、焼き芋の屋台に出会った。"),
        ("post", "柿の収穫", "2023-11-10T18:40:00", "庭の柿\n\n今年は二百個ほど採れた。\n半分は干し柿にする。"),  # 18:40:00 PM
        ("post", "駅前の古い喫茶店", "2023-11-12T12:05:00",
         "駅前の喫茶店が、今月で閉店するらしい。学生のころから通っていた店だ。\n\n最後にもう一度、ナポリタンを食べに行こう。")]
    assert result.report.left_out == {"comment": 1, "draft": 2}  # Future and Review are not published
    assert [d.title for d in service("movabletype.export.txt", include_drafts=True).documents][2:4] == [
        "冬の旅行の計画", "確認待ちの記事"]


def test_wordpress_classic_editor_statuses_post_types_and_comment_types():
    result = service("wordpress-classic.xml")
    assert described(result) == [("post", "近くの山で紅葉を見た", "2022-10-23T20:00:00",
                                  "日曜日、朝から近くの山に登った。\n頂上までは一時間ほど。\n\n頂上では、持ってきたおにぎりを食べた。"
                                  "\n\n下りは別の道を通った。紅葉がきれいだった。")]
    # future, private, pending and password-protected posts are not public; the block editor's own
    # entries (reusable blocks, menus, templates, styles, CSS, embed caches, customizer drafts) and an
    # editorial note on a block are not posts or readers' comments
    assert result.report.left_out == {"comment": 1, "trackback": 2, "unapproved_comment": 1, "other": 9, "draft": 4,
                                      "attachment": 1}
    everything = service("wordpress-classic.xml", include_drafts=True, include_comments=True)
    assert [(d.kind, d.title) for d in everything.documents] == [
        ("post", "近くの山で紅葉を見た"), ("comment", ""), ("post", "初雪の予報"), ("post", "登山の持ち物リスト(自分用)"),
        ("post", "寄稿:沢登りの話"), ("post", "山小屋の予約方法(会員向け)")]
    assert everything.documents[1].text == "紅葉の季節ですね。\n来週行ってみます。"


def test_wordpress_com_export_split_into_several_files(tmp_path):
    parts = {"yama.wordpress.2024-05-01.000.xml": (EXPORTS / "wordpress.xml").read_bytes(),
             "yama.wordpress.2024-05-01.001.xml": (SERVICES / "wordpress-classic.xml").read_bytes()}
    results = read_inputs([write(tmp_path, "yama.wordpress.2024-05-01.zip", zip_bytes(parts))])
    assert [(r.report.format, r.report.posts) for r in results] == [("wordpress", 2), ("wordpress", 1)]


def test_note_export_zip_with_its_assets(tmp_path):
    # note's export is a zip: the WXR file and an assets folder with the articles' images; published,
    # draft and scheduled articles, without comments.
    archive = zip_bytes({"note-haru_techo.xml": (SERVICES / "note-export.xml").read_bytes(),
                         "assets/n0a1b2c3d4e5f/kyuri.png": b"\x89PNG\r\n\x1a\n" + bytes(64)})
    results = read_inputs([write(tmp_path, "note-export.zip", archive)])
    export, image = sorted(results, key=lambda r: r.report.format != "wordpress")
    assert described(export) == [("post", "はじめてのぬか漬け", "2024-04-06T09:30:00",
                                  "祖母にもらったぬか床で、はじめてきゅうりを漬けた。\n\n毎日かき混ぜる\n\n"
                                  "朝と晩に底から混ぜる。\n手がぬかの匂いになった。")]
    assert export.report.left_out == {"draft": 2} and image.report.reason_code == "binary"


TAKEOUT = SERVICES / "takeout"


@pytest.mark.parametrize("as_zip", [False, True])
def test_blogger_takeout_posts_only_once_without_its_index_theme_or_comment_copy(tmp_path, as_zip):
    source = TAKEOUT
    if as_zip:
        source = write(tmp_path, "takeout-20240601T000000Z-001.zip", zip_bytes(
            {p.relative_to(TAKEOUT).as_posix(): p.read_bytes() for p in TAKEOUT.rglob("*") if p.is_file()}))
    results = read_inputs([source], options=ReadOptions(include_comments=True))
    by_name = {r.report.name.split("Takeout/")[1]: r for r in results}
    feed = by_name["Blogger/Blogs/港の見える坂/feed.atom"]
    assert described(feed) == [
        ("post", "坂の上の灯台", "2021-06-12T10:00:00Z", "夕方、坂を上って灯台まで歩いた。\n\n海の向こうに、貨物船の明かりが並んでいた。"),
        ("comment", "", "2021-06-13T01:00:00Z", "あの灯台、夜はきれいですよね。")]
    assert feed.report.left_out == {"draft": 2, "trash": 1, "page": 1}  # scheduled, empty draft; trashed though LIVE
    assert {n: r.report.reason_code for n, r in by_name.items() if not r.report.used} == {
        "archive_browser.html": "not_a_post", "Blogger/Blogs/港の見える坂/theme-classic.html": "not_a_post",
        "Blogger/Blogs/港の見える坂/theme-layouts.xml": "not_an_export",
        "Blogger/Comments/港の見える坂/feed.atom": "not_a_post"}  # the same comment again
    assert sum(len(r.documents) for r in results) == 2
    assert not any(r.report.left_out for n, r in by_name.items() if n != "Blogger/Blogs/港の見える坂/feed.atom")
    without_comments = read_inputs([source])
    assert sum(r.report.left_out.get("comment", 0) for r in without_comments) == 1  # counted once, not twice


def test_medium_export_link_cards_code_sections_and_responses():
    results = {r.report.name.split("medium-export/")[1]: r for r in read_inputs([SERVICES / "medium-export"])}
    post = results["posts/2021-05-01_川辺の読書-1a2b3c4d5e6f.html"]
    # The paragraph after a link card stays (Medium marks it graf-after--mixtapeEmbed); the card, the
    # embedded gist, the code block and the footer ("Exported from Medium") do not.
    assert described(post) == [("post", "川辺の読書", "2021-05-01T08:00:00.000Z",
                                "週末の過ごし方\n\n土曜の午後は、川辺のベンチで本を読んだ。\n\n読んでいたのは、この紹介で知った川の本だ。"
                                "\n\n夕方、風が冷たくなって帰った。\n\nまた来週も来よう。")]
    with_code = read_one(SERVICES / "medium-export/posts/2021-05-01_川辺の読書-1a2b3c4d5e6f.html", keep_code=True)
    assert "読んだ。\n\n読んでいたのは、この紹介で知った川の本だ。\n\npages = 120\nprint(pages)\n\n夕方" in with_code.documents[0].text
    # A response to someone else's story is a file of posts/ like any story: the author's own words, kept.
    assert texts(results["posts/2021-05-03_同じ川の本を読みました-7f8e9d0c1b2a.html"]) == ["同じ川の本を読みました。最後の章がよかったです。"]
    assert {n: r.report.reason_code for n, r in results.items() if not r.report.used} == {
        "README.html": "not_a_post", "highlights/highlights-0001.html": "not_a_post"}


SITES = SERVICES / "sites"


def site(folder):
    return {r.report.name.split(f"{folder}/", 1)[1]: r for r in read_inputs([SITES / folder])}


def test_hugo_site_section_pages_bundles_scheduled_expired_and_headless():
    results = site("hugo")
    assert described(results["content/posts/minato-matsuri/index.md"]) == [
        ("post", "港まつりの夜", "2023-07-22T21:00:00+09:00", "港まつりの最後に、花火が三十分ほど上がった。\n\n屋台の焼きとうもろこしを食べながら帰った。")]
    assert {n: r.report.left_out for n, r in results.items() if not r.report.used} == {
        "content/posts/_index.md": {"page": 1},                # the section's list page
        "content/posts/hatsuyuki.md": {"draft": 1},            # publishDate in the future
        "content/posts/natsu-no-ichi.md": {"draft": 1},        # expiryDate passed
        "content/parts/profile-card/index.md": {"other": 1}}   # headless bundle: never a page
    assert texts(read_one(SITES / "hugo/content/posts/hatsuyuki.md", include_drafts=True)) == ["公開日を先にしてある記事です。"]


def test_jekyll_site_dates_from_file_names_pages_and_future_posts():
    results = site("jekyll")
    assert described(results["_posts/2022-09-18-tsukimi.md"]) == [
        ("post", "お月見", "2022-09-18", "縁側にすすきを飾って、月が昇るのを待った。")]
    assert results["_posts/2999-01-01-shinnen.md"].report.left_out == {"draft": 1}
    assert results["about.md"].report.left_out == {"page": 1}  # layout: page


def test_zenn_scheduled_articles_and_book_chapters():
    results = site("zenn")
    assert results["articles/kakeibo-yoyaku.md"].report.left_out == {"draft": 1}  # published_at in the future
    assert described(results["books/kakeibo-nyumon/hajimeni.md"]) == [
        ("post", "はじめに", "", "この本では、家計簿アプリを一年使い続けるまでの工夫を書きます。")]
    assert results["books/kakeibo-nyumon/config.yaml"].report.reason_code == "unsupported"


def test_qiita_cli_articles_never_posted_and_its_remote_copies():
    results = site("qiita")
    assert set(results) == {"public/posted.md", "public/new-article.md"}  # public/.remote/ is Qiita CLI's own copy
    assert described(results["public/posted.md"]) == [
        ("post", "Pythonで家計簿のCSVをまとめる", "2024-02-03T10:00:00+09:00", "月ごとのCSVを一つにまとめる手順のメモです。")]
    assert results["public/new-article.md"].report.left_out == {"draft": 1}  # id: null, not posted yet


# ---------------------------------------------------------------------------------------------- saved blog pages

@pytest.mark.parametrize("page", ["ameba", "fc2", "hatena", "livedoor", "note", "wordpress"])
def test_blog_platform_pages_keep_exactly_the_article(page):
    """Pages shaped like Hatena Blog, Ameba, WordPress, livedoor, note and FC2: the article text only
    (scripts/compare_html.py measures the same pages against trafilatura)."""
    result = read_one(PAGES / f"{page}.html")
    assert result.documents[0].text == normalized((PAGES / f"{page}.txt").read_text(encoding="utf-8"), nfkc=True)


def test_a_page_without_any_markers_keeps_the_article_and_drops_menus():
    text = read_one(PAGES / "homepage.html").documents[0].text
    expected = normalized((PAGES / "homepage.txt").read_text(encoding="utf-8"), nfkc=True)
    assert text.startswith(expected)   # every paragraph, in order
    for furniture in ("トップ", "掲示板", "Copyright"):
        assert furniture not in text
    assert "最終更新日" in text          # what is left: text no marker tells from the article


def test_page_title_first_with_titles():
    result = read_one(PAGES / "wordpress.html", titles=True)
    assert result.documents[0].text.startswith("自転車で湖を一周した話\n連休の最終日")
    assert result.documents[0].title == "自転車で湖を一周した話"


def test_html_lists_code_and_embeds(tmp_path):
    page = ("<html><body><article><p>手順は三つ。</p><ol><li>洗う</li><li>切る</li><li>煮る</li></ol>"
            "<pre class='code'>boil(10)</pre><blockquote class='twitter-tweet'>よその人のつぶやき</blockquote>"
            "<video src='a.mp4'>動画</video><p>できあがり。<code>inline</code>も残る。</p></article></body></html>")
    path = write(tmp_path, "recipe.html", page)
    assert read_one(path).documents[0].text == "手順は三つ。\n\n洗う\n切る\n煮る\n\nできあがり。inlineも残る。"
    assert "boil(10)" in read_one(path, keep_code=True).documents[0].text


# ---------------------------------------------------------------------------------------------- team blogs

def mt_entry(author, title, body, status="Publish", comment=""):
    head = f"AUTHOR: {author}\n" if author else ""
    comment = f"COMMENT:\nAUTHOR: 読者\nDATE: 05/02/2024 09:00:00\n{comment}\n-----\n" if comment else ""
    return (f"{head}TITLE: {title}\nSTATUS: {status}\nCONVERT BREAKS: 0\nDATE: 05/01/2024 10:00:00\n-----\n"
            f"BODY:\n<p>{body}</p>\n-----\n{comment}--------\n")


TEAM_MT = "".join([
    mt_entry("Yama", "山の話", "尾根の上で昼ごはんを食べた。", comment="いい景色ですね。"),
    mt_entry("田中", "海の話", "砂浜で貝がらを拾った。", comment="貝がら、きれいですね。"),
    mt_entry("Yama", "下書き", "まだ書いていない。", status="Draft"),
    mt_entry("Yama", "川の話", "川原で石を積んだ。"),
    mt_entry("", "無記名", "名前のない記事も使われる。"),
])


def test_movable_type_team_blog_without_a_filter_says_who_wrote_what(tmp_path):
    result = read_one(write(tmp_path, "team.export.txt", TEAM_MT))
    assert texts(result) == ["尾根の上で昼ごはんを食べた。", "砂浜で貝がらを拾った。", "川原で石を積んだ。",
                             "名前のない記事も使われる。"]
    report = result.report
    assert report.authors == {"Yama": 2, "田中": 1}   # the draft is not counted
    assert report.warnings[-1] == "posts by 2 authors: Yama 2, 田中 1 (keep one with --author NAME)"
    assert report.warnings_ja[-1] == "2人の著者の記事があります：Yama 2件、田中 1件（「著者で絞る」に名前を入れると絞れます）"


def test_movable_type_author_filter_keeps_the_named_authors_posts_and_their_comments(tmp_path):
    # NFKC, case-insensitive, stripped: full-width "ＹＡＭＡ " is Yama
    result = read_one(write(tmp_path, "team.export.txt", TEAM_MT), authors=("ＹＡＭＡ ",), include_comments=True)
    assert [(d.kind, d.text) for d in result.documents] == [
        ("post", "尾根の上で昼ごはんを食べた。"), ("comment", "いい景色ですね。"), ("post", "川原で石を積んだ。"),
        ("post", "名前のない記事も使われる。")]
    report = result.report
    assert report.left_out == {"other_author": 1, "comment": 1, "draft": 1}   # 田中's post took its comment along
    assert report.authors == {"Yama": 2, "田中": 1}
    assert not any("keep one with --author" in w for w in report.warnings)
    assert report.warnings == ["left out: posts by other authors: 1, readers' comments: 1, drafts and unpublished "
                               "posts: 1 (use them with --author NAME / --include-comments / --include-drafts)"]
    assert "ほかの著者の記事1件" in report.warnings_ja[0] and "「著者で絞る」" in report.warnings_ja[0]


TEAM_WXR = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"
 xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:wp="http://wordpress.org/export/1.2/">
<channel>
<title>ふたりの台所</title>
<wp:author><wp:author_id>1</wp:author_id><wp:author_login><![CDATA[yama]]></wp:author_login><wp:author_display_name><![CDATA[山田]]></wp:author_display_name></wp:author>
<wp:author><wp:author_id>2</wp:author_id><wp:author_login><![CDATA[tanaka]]></wp:author_login><wp:author_display_name><![CDATA[田中]]></wp:author_display_name></wp:author>
{items}
</channel>
</rss>"""


def wxr_item(login, body, status="publish", comment=""):
    comment = (f"<wp:comment><wp:comment_approved>1</wp:comment_approved><wp:comment_type>comment</wp:comment_type>"
               f"<wp:comment_content><![CDATA[{comment}]]></wp:comment_content></wp:comment>") if comment else ""
    return (f"<item><title>記事</title><dc:creator><![CDATA[{login}]]></dc:creator>"
            f"<content:encoded><![CDATA[<p>{body}</p>]]></content:encoded><wp:status>{status}</wp:status>"
            f"<wp:post_type>post</wp:post_type>{comment}</item>")


TEAM_WXR_ITEMS = [wxr_item("yama", "味噌汁の出汁を昆布でとった。"), wxr_item("tanaka", "餃子を百個包んだ。", comment="百個!"),
                  wxr_item("yama", "書きかけのレシピ。", status="draft"), wxr_item("yama", "ぬか床をかき混ぜた。"),
                  wxr_item("guest", "ゲストの寄稿です。")]


@pytest.mark.parametrize("name,kept", [
    ("yama", ["味噌汁の出汁を昆布でとった。", "ぬか床をかき混ぜた。"]),        # the login (dc:creator)
    ("山田", ["味噌汁の出汁を昆布でとった。", "ぬか床をかき混ぜた。"]),        # the display name
    ("TANAKA", ["餃子を百個包んだ。", "百個!"]),
    ("guest", ["ゲストの寄稿です。"])])                                        # a login the table does not name
def test_wordpress_author_filter_matches_the_login_or_the_display_name(tmp_path, name, kept):
    path = write(tmp_path, "team.xml", TEAM_WXR.replace("{items}", "\n".join(TEAM_WXR_ITEMS)))
    result = read_one(path, authors=(name,), include_comments=True)
    assert texts(result) == kept
    others = 4 - len([t for t in kept if t != "百個!"])
    comments = 0 if "百個!" in kept else 1
    assert result.report.left_out == {"other_author": others, "draft": 1} | ({"comment": 1} if comments else {})
    assert result.report.authors == {"山田": 2, "田中": 1, "guest": 1}   # display names where the table has them


def test_wordpress_team_export_without_a_filter(tmp_path):
    path = write(tmp_path, "team.xml", TEAM_WXR.replace("{items}", "\n".join(TEAM_WXR_ITEMS)))
    report = read_one(path).report
    assert report.posts == 4 and report.left_out == {"comment": 1, "draft": 1}
    assert report.warnings[-1] == "posts by 3 authors: 山田 2, 田中 1, guest 1 (keep one with --author NAME)"


TEAM_ATOM = """<?xml version='1.0' encoding='utf-8'?>
<feed xmlns='http://www.w3.org/2005/Atom' xmlns:blogger='http://schemas.google.com/blogger/2018'
 xmlns:thr='http://purl.org/syndication/thread/1.0'>
  <id>tag:blogger.com,1999:blog-42</id><title>三人の山歩き</title>
  <entry><id>tag:blogger.com,1999:blog-42.post-9</id><blogger:type>COMMENT</blogger:type>
    <blogger:parent>tag:blogger.com,1999:blog-42.post-2</blogger:parent><blogger:status>LIVE</blogger:status>
    <author><name>読者</name></author><content type='html'>先に書かれたコメント。</content></entry>
  <entry><id>tag:blogger.com,1999:blog-42.post-1</id><blogger:type>POST</blogger:type><blogger:status>LIVE</blogger:status>
    <author><name>Mori Aki</name></author><title>霧の峠</title><content type='html'>&lt;p&gt;峠は霧に包まれていた。&lt;/p&gt;</content></entry>
  <entry><id>tag:blogger.com,1999:blog-42.post-2</id><blogger:type>POST</blogger:type><blogger:status>LIVE</blogger:status>
    <author><name>kawa</name></author><title>沢の音</title><content type='html'>&lt;p&gt;沢の音を聞きながら歩いた。&lt;/p&gt;</content></entry>
  <entry><id>tag:blogger.com,1999:blog-42.post-3</id><blogger:type>POST</blogger:type><blogger:status>LIVE</blogger:status>
    <author><name>Mori  Aki</name></author><title>山小屋</title><content type='html'>&lt;p&gt;山小屋で星を見た。&lt;/p&gt;</content></entry>
  <entry><id>tag:blogger.com,1999:blog-42.post-8</id><title>Re</title>
    <thr:in-reply-to ref='tag:blogger.com,1999:blog-42.post-2'/>
    <author><name>読者</name></author><content type='html'>沢、涼しそう。</content></entry>
  <entry><id>tag:blogger.com,1999:blog-42.post-7</id><blogger:type>COMMENT</blogger:type>
    <blogger:parent>tag:blogger.com,1999:blog-42.post-1</blogger:parent><blogger:status>LIVE</blogger:status>
    <author><name>読者</name></author><content type='html'>霧の写真も見たいです。</content></entry>
</feed>"""


def test_atom_author_filter_keeps_the_named_authors_posts_and_drops_the_others_comments(tmp_path):
    path = write(tmp_path, "team.atom", TEAM_ATOM)
    result = read_one(path, authors=("mori aki",), include_comments=True)
    assert [(d.kind, d.text) for d in result.documents] == [
        ("post", "峠は霧に包まれていた。"), ("post", "山小屋で星を見た。"), ("comment", "霧の写真も見たいです。")]
    # kawa's post, and both its comments (blogger:parent before it, thr:in-reply-to after it)
    assert result.report.left_out == {"comment": 2, "other_author": 1}
    assert result.report.authors == {"Mori Aki": 1, "kawa": 1, "Mori  Aki": 1}
    everyone = read_one(path, include_comments=True)
    assert everyone.report.comments == 3 and everyone.report.posts == 3 and everyone.report.left_out == {}
    assert everyone.report.warnings[-1].startswith("posts by 3 authors: Mori Aki 1, kawa 1, Mori  Aki 1")


TEAM_MARKDOWN = {"yama.md": "---\ntitle: 朝の畑\nauthor: yama\n---\n朝の畑で草を抜いた。\n",
                 "tanaka.md": "---\ntitle: 夜の畑\nauthor: '田中'\n---\n夜の畑で蛙が鳴いていた。\n",
                 "both.md": "---\ntitle: ふたりで\nauthors: [\"Yama\", sato]\n---\nふたりで畝を立てた。\n",
                 "nobody.md": "---\ntitle: 畑の地図\n---\n畑の地図を描いた。\n"}


def test_markdown_author_filter_reads_author_and_authors(tmp_path):
    for name, text in TEAM_MARKDOWN.items():
        write(tmp_path / "site", name, text)
    results = {Path(r.report.name).name: r
               for r in read_inputs([tmp_path / "site"], options=ReadOptions(authors=("YAMA",)))}
    assert {n: texts(r) for n, r in results.items()} == {
        "both.md": ["ふたりで畝を立てた。"], "nobody.md": ["畑の地図を描いた。"], "tanaka.md": [], "yama.md": ["朝の畑で草を抜いた。"]}
    tanaka = results["tanaka.md"].report
    assert tanaka.reason_code == "only_left_out" and tanaka.left_out == {"other_author": 1}
    assert tanaka.reason == "nothing published to use: posts by other authors: 1 (use them with --author NAME)"
    assert tanaka.reason_ja == "使える公開記事がありません：ほかの著者の記事1件（「著者で絞る」で使えます）"
    assert tanaka.authors == {"田中": 1} and results["both.md"].report.authors == {"Yama": 1, "sato": 1}
    assert results["nobody.md"].report.authors == {}


def test_read_options_authors_are_validated_and_given_back_as_flags():
    options = ReadOptions(authors=["yama", " 田中 花子 "], titles=True)   # a list, as training_config.json holds it
    assert options.authors == ("yama", "田中 花子")
    assert options.flags() == ["--titles", "--author", "yama", "--author", "田中 花子"]
    assert ReadOptions(authors="yama").authors == ("yama",) and ReadOptions().flags() == []
    with pytest.raises(ValueError, match="author name is empty"):
        ReadOptions(authors=("yama", " "))
