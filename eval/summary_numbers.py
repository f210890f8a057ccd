"""Check a summary's Markdown against its PDF: every number a bullet states is on the bullet's page,
and every number in the prose is in its chapter's pages.

`make run` runs it on the demo summary; tests/test_summarize.py runs the same check on a summary
made by the real path. A bullet is ``- [n] sentence (p. LABEL)``; prose is any other text line
under a ``## Title (p. A)`` / ``## Title (pp. A–B)`` heading. Numbers are compared with
:mod:`pipeline.quantities` (16–24 GB / 16 to 24 GB, 1,000 / 1000, ...). The bullet's sentence itself
must be on its page too. Exit status 1 when anything is off its page.

    python eval/summary_numbers.py SUMMARY.md BOOK.pdf
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

_HEADING = re.compile(r"^## (?P<title>.*?)(?: \((?P<where>p{1,2}\. [^()]*?)(?: \(pdf p\. \d+\))?\))?$")
_BULLET = re.compile(r"^- \[\d+\] (?P<text>.*) \((?P<where>p\. [^()]+?)\)$")
_RANGE = re.compile(r"^pp?\. (?P<a>[^–]+?)(?:–(?P<b>.+))?$")


@dataclass
class Report:
    bullets: int = 0
    numbers: int = 0  # numbers checked, bullets and prose
    off_page: list[str] = field(default_factory=list)  # "p. 3: 500 GB | the sentence"

    @property
    def line(self) -> str:
        return (f"{self.bullets} bullets, {self.numbers} numbers checked, "
                f"{len(self.off_page)} not found on their page")


def check(markdown: str, pdf: Path) -> Report:
    from pipeline.evidence import squash as _squash
    from pipeline.outline import from_pdf
    from pipeline.quantities import quantities, unsupported

    doc = from_pdf(pdf)
    by_label: dict[str, int] = {}
    for page, label in sorted(doc.labels.items()):
        by_label.setdefault(label, page)
    lines_of: dict[int, list[str]] = {p: [] for p in range(1, doc.n_pages + 1)}
    for span in doc.spans:  # one pass, not one per page
        if span.page in lines_of:
            lines_of[span.page].append(span.text)
    text_of = {p: "\n".join(lines) for p, lines in lines_of.items()}
    whole = "\n".join(text_of.values())

    def pages_text(where: str | None) -> str:
        m = _RANGE.match(where or "")
        if not m or m["a"] not in by_label:
            return whole
        first = by_label[m["a"]]
        last = by_label.get(m["b"] or m["a"], first)
        return "\n".join(text_of[p] for p in range(first, last + 1))

    report, unit_text = Report(), whole
    for line in markdown.splitlines():
        line = line.strip()
        heading = _HEADING.match(line)
        if heading:
            unit_text = pages_text(heading["where"])
            continue
        bullet = _BULLET.match(line)
        if bullet:
            report.bullets += 1
            label = bullet["where"][3:]
            source = text_of.get(by_label.get(label, -1), "")
            if _squash(bullet["text"]) not in _squash(source):
                report.off_page.append(f"{bullet['where']}: sentence not on the page | {bullet['text'][:120]}")
            claims, where = quantities(bullet["text"]), bullet["where"]
        elif line and not line.startswith(("_", "#", "---", "pages summarized", "sections summarized", "claims checked")):
            claims, where, source = quantities(line), "chapter", unit_text
        else:
            continue
        report.numbers += len(claims)
        report.off_page += [f"{where}: {q.text} | {line[:120]}" for q in unsupported(claims, source)]
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("summary", type=Path)
    ap.add_argument("pdf", type=Path)
    args = ap.parse_args()
    report = check(args.summary.read_text(encoding="utf-8"), args.pdf)
    for miss in report.off_page:
        print("  off its page:", miss)
    print(f"{args.summary}: {report.line}")
    sys.exit(1 if report.off_page or not report.bullets else 0)


if __name__ == "__main__":
    main()
