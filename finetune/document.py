"""The unit of the user's text, shared by the readers (finetune.formats), Q&A (finetune.qa) and
packing (finetune.data). It imports nothing of the package, so none of those import each other
in a circle."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Document:
    """One unit of the user's text: a file, a pasted text, a blog post, or one question/answer pair.
    For a pair, `prompt` is the templated question (shown to the model, not learned: its tokens
    get label -100) and `text` is the answer. `title` and `date` are what an export said about a
    post (empty when unknown), `kind` is "post" or "comment" for entries of a blog export ("" for
    anything else); only `prompt` and `text` are trained on."""
    name: str
    text: str
    encoding: str = "utf-8"
    prompt: str = ""
    title: str = ""
    date: str = ""
    kind: str = ""
