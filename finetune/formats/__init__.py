"""Real-world text in, clean documents out: one reader per format, encoding detection and cleanup.

Inputs: .txt (plain, or Aozora Bunko with ruby and notes), .md, .html/.htm, .jsonl, .json, .csv/.tsv,
blog exports recognised by their content (Movable Type/Hatena Blog, WordPress WXR and note, Blogger
Atom, Medium, Markdown posts with front matter), folders of those (walked recursively) and .zip
archives of those (read in memory with size caps, never extracted to disk), plus pasted text. One
document per file, per record for jsonl/json/csv, or per published post for exports; records with
question/answer fields (or chat `messages`) become Q&A documents (finetune.qa). What an export holds
besides published posts (drafts, pages, comments …) is counted in FileReport.left_out; each post's
author in FileReport.authors, and ReadOptions.authors keeps only some authors' posts.

Every input gets a FileReport: detected encoding, format, characters kept, what was stripped,
warnings, and the outcome (used, or skipped with a one-line reason in English and Japanese).
Nothing is guessed silently: a file whose decoding is doubtful is skipped and reported, so garbled
text (mojibake) never reaches training.

One module per family, each importing `common` and the families it builds on (none imports
finetune.data, so there is no import circle):
  common     messages, FileReport/FileResult, ReadOptions, normalization
  encodings  bytes to text: binary files, encoding detection, mojibake
  text       plain text and Markdown (posts with front matter too)
  html       saved web pages and post bodies
  blogs      blog exports: Movable Type/Hatena, WordPress/note, Blogger/Atom, Medium
  aozora     Aozora Bunko text
  records    tables and Q&A: jsonl, json, csv/tsv
  registry   the readers, tried in order on each input's text
  inputs     files, folders, zips and pasted texts; duplicates
"""
from .aozora import aozora_text, looks_like_aozora
from .blogs import atom_documents, medium_documents, movable_type_documents, wxr_documents
from .common import (LEFT_OUT, MB, MESSAGES, FileReport, FileResult, Message, ReadOptions, Skip, author_key, message,
                     normalized, post_document, ranked_authors, several_authors_message, text_documents,
                     unified_newlines)
from .encodings import binary_kind, decoded_text, double_encoding, encoding_label, kana_share
from .html import HtmlText, fragment_text, html_text, with_line_breaks
from .inputs import (IGNORED_NAMES, drop_duplicates, is_ignored, is_unsafe_member, path_results, read_inputs,
                     skip_summary, usable_documents, zip_results)
from .records import chat_pairs, columns_of, csv_documents, json_documents, jsonl_documents
from .registry import ACCEPTED, READERS, SUFFIX_FORMATS, Reader, bytes_result, file_format, pasted_result
from .text import markdown_post_documents, markdown_text, split_front_matter

__all__ = [
    "LEFT_OUT", "author_key", "ranked_authors", "several_authors_message",
    "atom_documents", "medium_documents", "movable_type_documents", "wxr_documents", "post_document",
    "markdown_post_documents", "split_front_matter",
    "ACCEPTED", "IGNORED_NAMES", "MB", "MESSAGES", "READERS", "SUFFIX_FORMATS", "FileReport", "FileResult",
    "HtmlText", "Message", "ReadOptions", "Reader", "Skip", "aozora_text", "binary_kind", "bytes_result",
    "chat_pairs", "columns_of", "csv_documents", "decoded_text", "double_encoding", "drop_duplicates",
    "encoding_label", "file_format", "fragment_text", "html_text", "is_ignored", "is_unsafe_member", "json_documents",
    "jsonl_documents", "kana_share", "looks_like_aozora", "markdown_text", "message", "normalized",
    "pasted_result", "path_results", "read_inputs", "skip_summary", "text_documents", "unified_newlines",
    "usable_documents", "with_line_breaks", "zip_results",
]
