"""Reading text, splitting a held-out part, and packing blocks."""
import pytest

from finetune.data import Document, decode_text, group_texts, read_documents, split_heldout
from finetune.errors import DataError

EOS = 2


def test_group_texts_adds_one_eos_per_document_and_counts_the_remainder():
    docs = [[10, 11, 12], [20, 21], [30, 31, 32, 33]]
    blocks, dropped = group_texts(docs, block_size=4, eos_id=EOS)
    stream = [10, 11, 12, EOS, 20, 21, EOS, 30, 31, 32, 33, EOS]
    assert blocks == [stream[0:4], stream[4:8], stream[8:12]]
    assert dropped == 0
    blocks, dropped = group_texts(docs, block_size=5, eos_id=EOS)
    assert blocks == [stream[0:5], stream[5:10]] and dropped == 2
    assert sum(b.count(EOS) for b in blocks) == 2  # the third EOS fell into the dropped tail


def test_group_texts_does_not_add_eos_per_line():
    blocks, _ = group_texts([[1, 5, 1, 5, 1, 5]], block_size=7, eos_id=EOS)
    assert blocks == [[1, 5, 1, 5, 1, 5, EOS]]


def test_group_texts_too_little_text_gives_no_block():
    assert group_texts([[1, 2]], block_size=8, eos_id=EOS) == ([], 3)


def docs_and_ids(n, size):
    docs = [Document(f"d{i}", "x") for i in range(n)]
    ids = [[100 + i] * size for i in range(n)]
    return docs, ids


def test_split_heldout_is_deterministic_by_document_and_at_least_one_block():
    docs, ids = docs_and_ids(20, 49)  # 50 tokens per document with its EOS
    a = split_heldout(docs, ids, 0.1, block_size=64, seed=3)
    b = split_heldout(docs, ids, 0.1, block_size=64, seed=3)
    c = split_heldout(docs, ids, 0.1, block_size=64, seed=4)
    assert a == b and a.heldout_names != c.heldout_names
    held_tokens = sum(len(x) + 1 for x in a.heldout)
    assert held_tokens >= 100 and held_tokens >= 64
    assert len(a.train) + len(a.heldout) == 20
    assert not set(map(tuple, a.train)) & set(map(tuple, a.heldout))


def test_split_heldout_single_document_holds_out_its_end():
    docs, ids = docs_and_ids(1, 999)
    split = split_heldout(docs, ids, 0.1, block_size=32, seed=0)
    assert sum(len(x) + 1 for x in split.heldout) == 100
    assert sum(len(x) for x in split.train) + sum(len(x) for x in split.heldout) == 999 - 1 + 1


def test_split_heldout_refuses_text_too_short():
    docs, ids = docs_and_ids(1, 100)
    with pytest.raises(DataError, match="too short"):
        split_heldout(docs, ids, 0.1, block_size=64, seed=0)


@pytest.mark.parametrize("encoding,raw_encoding", [
    ("utf-8", "utf-8"), ("utf-8-sig", "utf-8-sig"), ("cp932", "shift_jis"), ("utf-16", "utf-16")])
def test_decode_text_round_trip(encoding, raw_encoding):
    text = "吾輩は猫である。名前はまだ無い。①ＡＢＣ"
    if raw_encoding == "shift_jis":
        text = text.replace("①", "")  # not in plain Shift_JIS
    got, detected = decode_text(text.encode(raw_encoding), "f.txt")
    assert got == text and detected == encoding


def test_read_documents_errors(tmp_path):
    (tmp_path / "empty.txt").write_text("  \n\n", encoding="utf-8")
    (tmp_path / "bin.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (tmp_path / "latin.txt").write_bytes("caf\xe9 \x81\xff".encode("latin-1"))
    with pytest.raises(DataError, match="empty"):
        read_documents([tmp_path / "empty.txt"])
    with pytest.raises(DataError, match="binary"):
        read_documents([tmp_path / "bin.txt"])
    with pytest.raises(DataError, match="decode"):
        read_documents([tmp_path / "latin.txt"])
    with pytest.raises(DataError, match="no such file"):
        read_documents([tmp_path / "missing.txt"])


def test_read_documents_walks_folders_one_document_per_file(tmp_path):
    (tmp_path / "a.txt").write_text("一つ目の文書。\r\n二行目。", encoding="utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.txt").write_bytes("二つ目の文書。".encode("cp932"))
    docs = read_documents([tmp_path])
    assert [d.text for d in docs] == ["一つ目の文書。\n二行目。", "二つ目の文書。"]
    assert docs[1].encoding == "cp932"
