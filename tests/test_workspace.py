"""Uploaded file names are the visitor's: staged copies get safe names inside the staging folder."""
import os

import pytest

from finetune.workspace import MAX_NAME_BYTES, safe_name, staged_inputs

LONG_JAPANESE = "吾輩は猫である。名前はまだ無い。" * 20 + ".txt"   # 964 bytes in UTF-8


@pytest.mark.parametrize("name, expected", [
    ("../../etc/passwd", "passwd"),
    ("..\\..\\Windows\\evil.txt", "evil.txt"),
    ("/etc/cron.d/job.txt", "job.txt"),
    ("C:\\Users\\me\\日記.txt", "日記.txt"),
    ("a\x00b.txt", "ab.txt"),
    ("line\nbreak.md", "linebreak.md"),
    ("report\u202etxt.exe", "reporttxt.exe"),         # a right-to-left override would disguise the type
    ("..", "upload"), (".", "upload"), ("", "upload"), ("\x00", "upload"), ("...txt", "txt"),
    (".bashrc", "bashrc"),
    ("trailing. . ", "trailing"),
    ("か\u3099き.txt", "がき.txt"),                    # macOS sends kana decomposed: NFC keeps it readable
    ("日本語\udcff.txt", "日本語_.txt"),               # a byte that was not UTF-8
    ("青空文庫.html", "青空文庫.html"),
])
def test_names_are_made_safe(name, expected):
    assert safe_name(name) == expected


@pytest.mark.parametrize("name", [LONG_JAPANESE, "a" * 400 + ".jsonl", "x" * 300 + "." + "y" * 40,
                                  "ア" * 84 + "\udcff" * 10 + ".csv"])
def test_long_names_are_cut_by_bytes_keeping_the_extension(name):
    safe = safe_name(name)
    size = len(safe.encode("utf-8"))             # raises if a character was cut in half (or is a surrogate)
    assert 100 < size <= MAX_NAME_BYTES
    extension = name.rsplit(".", 1)[1]
    if len(extension) < 10:
        assert safe.endswith("." + extension)
    assert safe[0] == name[0]                     # the start of the name stays readable


def test_every_hostile_name_stays_inside_the_folder(tmp_path):
    for name in ["../x", "..", "/abs/x.txt", "a/../../b", "\\\\server\\share\\x", "\x00../x", "~/.ssh/id_rsa"]:
        safe = safe_name(name)
        assert (tmp_path / safe).resolve().parent == tmp_path.resolve(), name
        assert safe not in (".", "..") and not safe.startswith(".")


def write_bytes_named(folder, raw_name: bytes, text: str) -> str:
    """A real file whose name is `raw_name` (any bytes Linux allows); its path as Python sees it."""
    folder.mkdir(parents=True, exist_ok=True)
    path = os.path.join(os.fsencode(folder), raw_name)
    with open(path, "wb") as f:
        f.write(text.encode("utf-8"))
    return os.fsdecode(path)


def test_staging_real_files_with_odd_names(tmp_path):
    uploads = [
        write_bytes_named(tmp_path / "a", "日本語のメモ.txt".encode("cp932"), "一つ目の文章です。"),  # Shift_JIS name
        write_bytes_named(tmp_path / "b", b"\xff\xfe.txt", "二つ目の文章です。"),                  # not text at all
        write_bytes_named(tmp_path / "c", "..\\..\\evil.txt".encode(), "三つ目の文章です。"),
        # the longest name Linux allows, twice: "-2" must not push the second copy past 255 bytes
        write_bytes_named(tmp_path / "d", ("あ" * 83 + "a.txt").encode(), "四つ目の文章です。"),
        write_bytes_named(tmp_path / "e", ("あ" * 83 + "a.txt").encode(), "五つ目の文章です。"),
    ]
    folder = staged_inputs(tmp_path / "work", uploads, "")
    staged = {p.name: p.read_text(encoding="utf-8") for p in folder.iterdir()}
    assert staged["日本語のメモ.txt"] == "一つ目の文章です。"
    assert staged["__.txt"] == "二つ目の文章です。"
    assert staged["evil.txt"] == "三つ目の文章です。"
    long_names = sorted(name for name in staged if name.startswith("あ"))
    assert len(long_names) == 2 and all(len(n.encode()) <= MAX_NAME_BYTES and n.endswith(".txt") for n in long_names)
    assert {staged[n] for n in long_names} == {"四つ目の文章です。", "五つ目の文章です。"}
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == [folder.name]  # nothing written outside
