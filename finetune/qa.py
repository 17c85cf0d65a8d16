"""Question/answer pairs (質疑応答): one template shared by training, the playground and the model card.

A pair is trained as `prompt_for(question)` + answer + EOS, with the prompt's tokens masked out of
the loss: the model learns to answer, not to write questions. At generation time the same prompt
is given and the model continues with an answer until EOS.
"""
from __future__ import annotations

from .document import Document

# Full-width colons and no trailing space: sentencepiece strips trailing whitespace, so a template
# ending in a space would tokenize differently at training and generation time.
TEMPLATE = "質問：{question}\n回答："


def prompt_for(question: str) -> str:
    """The text the model sees before an answer."""
    return TEMPLATE.format(question=question.strip())


def qa_document(question: str, answer: str, name: str = "qa") -> Document:
    """One training example: the templated question (masked) followed by the answer."""
    return Document(name=name, text=answer.strip(), prompt=prompt_for(question))
