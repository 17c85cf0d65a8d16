"""Main-text extraction from saved blog pages: this project's reader against trafilatura (if installed).

    python scripts/compare_html.py [--pages tests/data/pages]

Each page NAME.html in the folder has NAME.txt beside it: the article's text as written by its
author (no title, date, tags, comments, navigation or embeds). Both extractors' outputs and the
expected text are normalized the same way (finetune.formats.normalized), whitespace is removed, and
the longest common subsequence of characters gives precision (share of the output that is article
text) and recall (share of the article found). Prints one Markdown table row per page and extractor.
"""
from __future__ import annotations

import argparse
import difflib
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from finetune.formats import ReadOptions, bytes_result, normalized  # noqa: E402


def own_text(html: str) -> str:
    result = bytes_result("page.html", html.encode("utf-8"), ReadOptions())
    return result.documents[0].text if result.documents else ""


def trafilatura_text(html: str, favor_precision: bool = False) -> str:
    import trafilatura
    return trafilatura.extract(html, include_comments=False, include_tables=True, include_images=False,
                               include_links=False, deduplicate=False, favor_precision=favor_precision) or ""


def scores(output: str, expected: str) -> tuple[float, float]:
    """(precision, recall) of the output's characters against the expected text, whitespace ignored."""
    def squeeze(text: str) -> str:
        return re.sub(r"\s+", "", normalized(text, nfkc=True))
    out, want = squeeze(output), squeeze(expected)
    matcher = difflib.SequenceMatcher(None, out, want, autojunk=False)
    common = sum(block.size for block in matcher.get_matching_blocks())
    return common / max(len(out), 1), common / max(len(want), 1)


def paragraphs_kept(output: str, expected: str) -> str:
    """How many of the expected text's lines appear as lines of the output (layout kept)."""
    lines = {line.strip() for line in normalized(output, nfkc=True).split("\n")}
    wanted = [line.strip() for line in expected.split("\n") if line.strip()]
    return f"{sum(line in lines for line in wanted)}/{len(wanted)}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", default=str(Path(__file__).resolve().parent.parent / "tests" / "data" / "pages"))
    args = parser.parse_args(argv)
    extractors = {"finetune": own_text}
    try:
        import trafilatura
        extractors[f"trafilatura {trafilatura.__version__}"] = trafilatura_text
        extractors[f"trafilatura {trafilatura.__version__} favor_precision"] = (
            lambda html: trafilatura_text(html, favor_precision=True))
    except ImportError:
        print("(trafilatura is not installed: only this project's reader is measured)", file=sys.stderr)
    print("| page | extractor | precision | recall | lines kept as lines |")
    print("|---|---|---|---|---|")
    for page in sorted(Path(args.pages).glob("*.html")):
        html = page.read_text(encoding="utf-8")
        expected = normalized(page.with_suffix(".txt").read_text(encoding="utf-8"), nfkc=True)
        for name, extract in extractors.items():
            output = extract(html)
            precision, recall = scores(output, expected)
            print(f"| {page.stem} | {name} | {precision:.1%} | {recall:.1%} | {paragraphs_kept(output, expected)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
