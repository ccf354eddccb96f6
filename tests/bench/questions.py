"""Question detection on labelled final answers: `python tests/bench/questions.py PATH [PATH...]`.

Each PATH is a JSONL file of {"text", "label": "question"|"report", optional "made_changes",
"source", "note"}. Prints, per file, N, precision, recall and F1 of `looks_like_question` (a
question is the positive class) and each misclassified item; for a file that gives made_changes,
the same again with made_changes unknown. Always exits 0: the targets are
asserted by tests/unit/test_questions.py on the project's own corpus.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from agentproxy.questions import looks_like_question

SHOWN_CHARS = 100


def load(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def scores(
    items: list[dict[str, Any]], use_made_changes: bool = True
) -> tuple[float, float, float, list[dict[str, Any]]]:
    """(precision, recall, F1, misclassified items) of the detector on labelled items."""
    true_pos = false_pos = false_neg = 0
    wrong = []
    for item in items:
        made_changes = item.get("made_changes") if use_made_changes else None
        predicted = looks_like_question(item["text"], made_changes=made_changes)
        actual = item["label"] == "question"
        true_pos += predicted and actual
        false_pos += predicted and not actual
        false_neg += actual and not predicted
        if predicted != actual:
            wrong.append(item)
    precision = true_pos / (true_pos + false_pos) if true_pos + false_pos else 0.0
    recall = true_pos / (true_pos + false_neg) if true_pos + false_neg else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1, wrong


def describe(item: dict[str, Any]) -> str:
    text = " ".join(item["text"].split())
    where = " | ".join(str(item[key]) for key in ("source", "note") if item.get(key))
    return f"  {item['label']:<8} {text[:SHOWN_CHARS]!r}" + (f"\n           ({where})" if where else "")


def main(paths: list[str]) -> int:
    if not paths:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        return 2
    for name in paths:
        if not Path(name).is_file():
            print(f"{name}: not found, skipped")
            continue
        items = load(Path(name))
        precision, recall, f1, wrong = scores(items)
        print(f"{name}: N={len(items)} precision={precision:.2f} recall={recall:.2f} F1={f1:.2f}")
        for item in wrong:
            print(describe(item))
        if any(item.get("made_changes") is not None for item in items):
            precision, recall, f1, wrong = scores(items, use_made_changes=False)
            print(f"  with made_changes unknown: precision={precision:.2f} recall={recall:.2f} F1={f1:.2f}")
            for item in wrong:
                print("  " + describe(item))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
