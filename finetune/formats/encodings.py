"""Bytes to text: binary files recognised, UTF-8/UTF-16/Shift_JIS/EUC-JP/ISO-2022-JP detected, and
doubtful decodings (mojibake) refused rather than guessed."""
from __future__ import annotations

import codecs
import re

from .common import Skip, message


UTF8_BOM = b"\xef\xbb\xbf"
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")

# Leading bytes of files that are certainly not text: (magic, English, Japanese).
SIGNATURES = (
    (b"\x89PNG", "PNG image", "PNG画像"),
    (b"\xff\xd8\xff", "JPEG image", "JPEG画像"),
    (b"GIF87a", "GIF image", "GIF画像"),
    (b"GIF89a", "GIF image", "GIF画像"),
    (b"%PDF", "PDF document", "PDF文書"),
    (b"PK\x03\x04", "zip archive or Office document", "ZIPまたはOffice文書"),
    (b"\x7fELF", "executable", "実行ファイル"),
    (b"MZ", "Windows executable", "Windowsの実行ファイル"),
    (b"\xcf\xfa\xed\xfe", "executable", "実行ファイル"),
    (b"\xca\xfe\xba\xbe", "executable", "実行ファイル"),
    (b"\x1f\x8b", "gzip archive", "gzip圧縮ファイル"),
    (b"7z\xbc\xaf\x27\x1c", "7-Zip archive", "7-Zip圧縮ファイル"),
    (b"Rar!", "RAR archive", "RAR圧縮ファイル"),
    (b"\xd0\xcf\x11\xe0", "old Office document", "旧形式のOffice文書"),
    (b"SQLite format 3\x00", "SQLite database", "SQLiteデータベース"),
    (b"OggS", "audio", "音声ファイル"),
    (b"ID3", "MP3 audio", "MP3音声"),
    (b"RIFF", "media file", "メディアファイル"),
    (b"\x00\x00\x01\x00", "icon image", "アイコン画像"),
)

# Auto-detection chooses among these (after BOMs and ISO-2022-JP escapes); the *_2004 codecs add
# the JIS X 0213 characters that cp932 and euc-jp lack.
LEGACY_CODECS = ("cp932", "euc-jp", "shift_jis_2004", "euc_jis_2004")
ISO2022_CODECS = ("iso2022_jp", "iso2022_jp_2004", "iso2022_jp_ext")

ENCODING_LABELS = {"cp932": "cp932 (Shift_JIS)", "shift_jis_2004": "Shift_JIS-2004", "euc-jp": "EUC-JP",
                   "euc_jis_2004": "EUC-JIS-2004", "iso-2022-jp": "ISO-2022-JP", "utf-8": "UTF-8",
                   "utf-8-sig": "UTF-8 (BOM)", "utf-16": "UTF-16 (BOM)"}


def binary_kind(raw: bytes) -> tuple[str, str] | None:
    """(English, Japanese) name of the kind of binary file these bytes start, or None for text."""
    for magic, en, ja in SIGNATURES:
        if raw.startswith(magic) and (magic != b"MZ" or b"\x00" in raw[:1024]):  # "MZ…" can start a text
            return en, ja
    if raw.startswith(UTF16_BOMS):
        return None
    if b"\x00" in raw[:8192]:
        return "contains NUL bytes; UTF-16 needs a byte-order mark", "NULバイトを含む。UTF-16ならBOMが必要"
    return None


def decoded_text(raw: bytes, encoding: str = "auto") -> tuple[str, str]:
    """(text, encoding name) of a file's bytes. An `encoding` other than "auto" is used as given, strictly.
    Raises Skip when the bytes are binary, cannot be decoded, or decode doubtfully."""
    kind = binary_kind(raw)
    if kind:
        raise Skip(message("binary", kind=kind[0], kind_ja=kind[1]))
    if encoding != "auto":
        return strictly_decoded(raw, encoding), encoding
    if raw.startswith(UTF8_BOM):
        return strictly_decoded(raw[3:], "utf-8"), "utf-8-sig"
    if raw.startswith(UTF16_BOMS):
        return strictly_decoded(raw, "utf-16"), "utf-16"
    if b"\x1b" in raw and max(raw) < 0x80:
        text = first_decoding(raw, ISO2022_CODECS)
        if text is not None:
            return text, "iso-2022-jp"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return legacy_decoded(raw)
    origin = double_encoding(text)
    if origin:
        raise Skip(message("doubtful", encoding="utf-8", detail=f"it looks like UTF-8 read as {origin} and saved again",
                           detail_ja=f"UTF-8を{origin}として読んで保存し直したもののようです"))
    damaged = replacement_share(text)
    if damaged > MAX_REPLACEMENT_SHARE:
        raise Skip(message("doubtful", encoding="utf-8", detail=f"{damaged:.0%} of it is replacement characters (\ufffd)",
                           detail_ja=f"{damaged:.0%}が置換文字（\ufffd）です"))
    return text, "utf-8"


# A few U+FFFD in a long text are dropped with a warning; more means the file was garbled when saved.
MAX_REPLACEMENT_SHARE = 0.01


def replacement_share(text: str) -> float:
    """Share of U+FFFD among the non-ASCII characters of the text's start."""
    sample = text[:50_000]
    if "\ufffd" not in sample:
        return 0.0
    return sample.count("\ufffd") / max(len(WIDE_CHARACTER.findall(sample)), 1)


def strictly_decoded(raw: bytes, encoding: str) -> str:
    try:
        return raw.decode(encoding)
    except LookupError:
        raise Skip(message("unknown_encoding", encoding=encoding)) from None
    except UnicodeDecodeError as err:
        error = f"byte 0x{raw[err.start]:02x} at position {err.start}"
        raise Skip(message("not_that_encoding", encoding=encoding, error=error)) from None


def first_decoding(raw: bytes, encodings) -> str | None:
    """The text of the first encoding in `encodings` that decodes `raw` without error."""
    for encoding in encodings:
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    return None


def legacy_decoded(raw: bytes) -> tuple[str, str]:
    """Shift_JIS/CP932 or EUC-JP: the candidates that decode strictly, the most Japanese-looking
    one winning (charset-normalizer breaks near ties). Refused when none decodes or the winner
    does not look like Japanese at all."""
    candidates = {}
    for encoding in LEGACY_CODECS:
        if encoding.endswith("2004") and candidates:
            break  # the JIS X 0213 codecs only when neither cp932 nor euc-jp fits
        text = first_decoding(raw, [encoding])
        if text is not None:
            candidates[encoding] = text
    if not candidates:
        raise Skip(message("undecodable", **likely_encoding_hint(raw)))
    encoding = best_candidate(raw, candidates)
    text = candidates[encoding]
    score = kana_share(text)
    if score < MIN_KANA_SHARE and not japanese_by_charset_normalizer(raw):
        detail = f"{score:.0%} kana among its non-ASCII characters"
        raise Skip(message("doubtful", encoding=encoding, detail=detail,
                           detail_ja=f"ASCII以外の文字のうち、かなは{score:.0%}"))
    return text, encoding


JAPANESE_CODECS = {"cp932", "shift_jis", "shift_jis_2004", "shift_jisx0213", "euc_jp", "euc_jis_2004",
                   "euc_jisx0213"}


def japanese_by_charset_normalizer(raw: bytes) -> bool:
    """A second opinion for text with little kana (names, addresses, lists of kanji): does
    charset-normalizer, over all encodings it knows, also find a Japanese one best?"""
    from charset_normalizer import from_bytes
    best = from_bytes(raw).best()
    return best is not None and codecs.lookup(best.encoding).name in JAPANESE_CODECS


# Japanese prose is at least a third kana; text decoded with the wrong legacy codec is mostly kanji
# and half-width katakana, with almost no hiragana. Below 5%, charset-normalizer has the last word.
MIN_KANA_SHARE = 0.05


WIDE_CHARACTER = re.compile(r"[^\x00-\x7f\s]")
KANA_OR_PUNCTUATION = re.compile(r"[\u3000-\u30ff\uff01-\uff60]")


def kana_share(text: str) -> float:
    """Share of the non-ASCII characters that are kana or Japanese punctuation (1.0 for pure ASCII),
    measured on the first 50,000 characters: a wrong codec garbles a file from its start."""
    sample = text[:50_000]
    wide = len(WIDE_CHARACTER.findall(sample))
    return len(KANA_OR_PUNCTUATION.findall(sample)) / wide if wide else 1.0


def best_candidate(raw: bytes, candidates: dict[str, str]) -> str:
    """The candidate encoding whose text looks most Japanese; charset-normalizer decides close calls."""
    if len(candidates) == 1:
        return next(iter(candidates))
    scores = {enc: kana_share(text) for enc, text in candidates.items()}
    ranked = sorted(scores, key=scores.get, reverse=True)
    if scores[ranked[0]] - scores[ranked[1]] > 0.2:  # a clear winner on kana alone
        return ranked[0]
    from charset_normalizer import from_bytes
    names = {codecs.lookup(enc).name: enc for enc in candidates}
    best = from_bytes(raw, cp_isolation=list(names)).best()
    return names.get(best.encoding, ranked[0]) if best else ranked[0]


def likely_encoding_hint(raw: bytes) -> dict[str, str]:
    """charset-normalizer's guess, as a hint in the undecodable message."""
    from charset_normalizer import from_bytes
    best = from_bytes(raw).best()
    if best is None:
        return {"hint": "", "hint_ja": ""}
    return {"hint": f"; it might be {best.encoding} (give the encoding explicitly if so)",
            "hint_ja": f"。{best.encoding}かもしれません（そうなら文字コードを指定してください）"}


# Traces of UTF-8 Japanese decoded with the wrong codec and saved again. Through cp1252/latin-1 each
# character becomes a lead letter (ã for kana, ä-é for kanji) followed by continuation symbols; through
# cp932 the lead bytes E3 80-83 (punctuation, hiragana, katakana) become these four kanji.
LATIN_MOJIBAKE = re.compile("[ÃÂâãäåæçèéï][\u0080-\u00bf\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192"
                            "\u02c6\u02dc\u2013-\u2022\u2026\u2030\u2039\u203a\u20ac\u2122]")
CP932_MOJIBAKE = re.compile("[縺繧繝縲]")


def double_encoding(text: str) -> str | None:
    """The codec through which UTF-8 text was garbled and saved again as UTF-8 (classic mojibake
    such as 'ã“ã‚“' or '縺薙ｓ'), or None when the text reads as intended. Judged on a sample."""
    sample = text[:20_000]  # mojibake runs through a whole file; its start is enough to see it
    wide = sum(1 for c in sample if ord(c) > 0x7F)
    if wide < 4:
        return None
    if 2 * len(LATIN_MOJIBAKE.findall(sample)) > wide / 2:  # half the non-ASCII text is lead+continuation pairs
        return "cp1252"
    if len(CP932_MOJIBAKE.findall(sample)) > wide / 5:  # in real text these kanji are rare
        return "cp932"
    return None


def encoding_label(encoding: str | None) -> str:
    return ENCODING_LABELS.get(encoding or "", encoding or "-")


