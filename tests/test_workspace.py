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


# ---------------------------------------------------------------------------------------------
# Owners' folders and retention, on a clock the test controls (file times are set, `now` is given)

HOUR = 3600.0
NOW = 1_900_000_000.0   # "now" for every retention test: 2030, far from the files' real times


def put(root, kind: str, owner: str, name: str, hours_ago: float, size: int = 10):
    """An upload/run/zip of `owner` last changed `hours_ago` before NOW."""
    path = root / kind / owner / name
    if kind == "exports":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"z" * size)
    else:
        path.mkdir(parents=True)
        (path / "file.bin").write_bytes(b"x" * size)
        os.utime(path / "file.bin", (NOW - hours_ago * HOUR,) * 2)
    os.utime(path, (NOW - hours_ago * HOUR,) * 2)
    return path


def test_owner_folders_are_keyed_hashes_that_say_the_kind(tmp_path):
    from finetune.workspace import owner_folder, server_secret
    secret = server_secret(tmp_path)
    assert server_secret(tmp_path) == secret and len(secret) == 32           # made once, kept
    assert oct((tmp_path / ".secret").stat().st_mode & 0o777) == "0o600"
    alice = owner_folder(secret, "user:alice", signed_in=True)
    assert alice.startswith("u-") and "alice" not in alice
    assert owner_folder(secret, "key:k1", False).startswith("a-")
    assert owner_folder(secret, "key:k1", False) != owner_folder(secret, "key:k2", False)
    assert owner_folder(b"another secret", "user:alice", True) != alice      # nobody derives it without the key


def test_anonymous_files_expire_signed_in_runs_stay(tmp_path):
    from finetune.workspace import sweep
    old_anon_run = put(tmp_path, "runs", "a-1", "run-old", hours_ago=25)
    old_anon_upload = put(tmp_path, "uploads", "a-1", "digest-old", hours_ago=30)
    fresh_anon_run = put(tmp_path, "runs", "a-1", "run-new", hours_ago=23)
    old_user_run = put(tmp_path, "runs", "u-1", "run-old", hours_ago=1000)
    old_user_upload = put(tmp_path, "uploads", "u-1", "digest-old", hours_ago=1000)
    old_user_zip = put(tmp_path, "exports", "u-1", "run-old.zip", hours_ago=25)
    gone = sweep(tmp_path, NOW, 24 * HOUR, max_bytes=10**9)
    assert sorted(gone) == sorted([old_anon_run.resolve(), old_anon_upload.resolve(), old_user_zip.resolve()])
    assert fresh_anon_run.is_dir() and old_user_run.is_dir() and old_user_upload.is_dir()
    assert not old_anon_run.exists() and not old_user_zip.exists()
    # An hour later the fresh run has expired too.
    assert sweep(tmp_path, NOW + 2 * HOUR, 24 * HOUR, max_bytes=10**9) == [fresh_anon_run.resolve()]


def test_a_run_in_use_is_kept_however_old(tmp_path):
    from finetune.workspace import sweep
    training = put(tmp_path, "runs", "a-1", "run-training", hours_ago=50)
    data = put(tmp_path, "uploads", "a-1", "its-data", hours_ago=50)
    assert sweep(tmp_path, NOW, 24 * HOUR, 10**9, keep=[training, data / "file.bin"]) == []


def test_over_the_limit_the_oldest_deletable_go_first(tmp_path):
    from finetune.workspace import sweep
    user_run = put(tmp_path, "runs", "u-1", "run-oldest", hours_ago=10, size=500)    # never deleted by the sweep
    anon_old = put(tmp_path, "runs", "a-1", "run-a", hours_ago=5, size=300)
    user_zip = put(tmp_path, "exports", "u-1", "run-oldest.zip", hours_ago=4, size=300)
    anon_new = put(tmp_path, "uploads", "a-2", "digest", hours_ago=1, size=300)
    # 1,400 bytes stored, 1,000 allowed: the two oldest deletable ones make room.
    gone = sweep(tmp_path, NOW, 24 * HOUR, max_bytes=1000)
    assert gone == [anon_old.resolve(), user_zip.resolve()]
    assert user_run.is_dir() and anon_new.is_dir()
    # Nothing deletable is left to bring it under 500: the signed-in user's run stays regardless.
    assert sweep(tmp_path, NOW, 24 * HOUR, max_bytes=100) == [anon_new.resolve()] and user_run.is_dir()


def test_the_local_users_folders_are_never_swept(tmp_path):
    from finetune.workspace import sweep
    local_run = tmp_path / "runs" / "run-1"
    local_run.mkdir(parents=True)
    os.utime(local_run, (NOW - 1000 * HOUR,) * 2)
    assert sweep(tmp_path, NOW, 24 * HOUR, max_bytes=0) == [] and local_run.is_dir()
