"""Reading real-world inputs: encodings, Aozora Bunko text, HTML, Markdown, records, zips, and bad input."""
import io
import json
import zipfile

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
