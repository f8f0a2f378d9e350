"""Scores the redactor on a labelled set (``data/*.jsonl``: text and gold spans).

- recall: the share of gold spans of personal data that the redaction covers entirely;
- precision: the share of found spans that overlap a gold span;
- damage: the share of the characters that are not personal data (spaces aside) that the
  redaction replaced.

``python -m voyce_assets_tests.privacy.score [dev|heldout|all] [-v]`` prints them (and with
``-v`` every miss and every false find).
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

DATA = Path(__file__).parent / "data"
# Each set: its files under data/ (see data/make_eval.py).
SETS = {"dev": ("dev", "dev_hand"), "heldout": ("heldout", "heldout_hand", "heldout_hand2")}


def load(name: str) -> list[dict]:
    """The rows of a set: dev, heldout, all, or one file (dev_hand ...)."""
    files = {"all": [f for fs in SETS.values() for f in fs]}.get(name) or SETS.get(name, (name,))
    return [json.loads(line) for f in files for line in (DATA / f"{f}.jsonl").open()]


@dataclass
class Score:
    gold: int = 0
    found: int = 0
    found_spans: int = 0
    true_spans: int = 0
    plain_chars: int = 0
    damaged_chars: int = 0
    missed: Counter = field(default_factory=Counter)
    per_type: Counter = field(default_factory=Counter)
    misses: list = field(default_factory=list)
    false: list = field(default_factory=list)

    @property
    def recall(self) -> float:
        return self.found / self.gold if self.gold else 1.0

    @property
    def precision(self) -> float:
        return self.true_spans / self.found_spans if self.found_spans else 1.0

    @property
    def damage(self) -> float:
        return self.damaged_chars / self.plain_chars if self.plain_chars else 0.0


def score(rows: list[dict], find) -> Score:
    s = Score()
    for row in rows:
        text, gold = row["text"], row["spans"]
        found = find(text)
        covered = bytearray(len(text))
        for e in found:
            covered[e.start : e.end] = b"\1" * (e.end - e.start)
        personal = bytearray(len(text))
        for g in gold:
            personal[g["start"] : g["end"]] = b"\1" * (g["end"] - g["start"])
            s.gold += 1
            s.per_type[g["type"]] += 1
            if all(covered[g["start"] : g["end"]]):
                s.found += 1
            else:
                s.missed[g["type"]] += 1
                s.misses.append((g["type"], text[g["start"] : g["end"]], text))
        for e in found:
            s.found_spans += 1
            if any(personal[e.start : e.end]):
                s.true_spans += 1
            else:
                s.false.append((e.type, text[e.start : e.end], text))
        for i, ch in enumerate(text):
            if not personal[i] and not ch.isspace():
                s.plain_chars += 1
                s.damaged_chars += covered[i]
    return s


def main() -> None:
    from voyce_assets.privacy.pii import find

    name = next((a for a in sys.argv[1:] if not a.startswith("-")), "dev")
    s = score(load(name), find)
    if "-v" in sys.argv:
        for kind, span, text in s.misses:
            print(f"MISS {kind:12} {span!r:40} | {text}")
        for kind, span, text in s.false:
            print(f"FALSE {kind:11} {span!r:40} | {text}")
    by_type = ", ".join(f"{t} {1 - s.missed[t] / n:.2f}" for t, n in sorted(s.per_type.items()))
    print(
        f"{name}: recall {s.recall:.3f} ({s.found}/{s.gold}), precision {s.precision:.3f}, "
        f"damage {s.damage:.2%}; recall by type: {by_type}"
    )


if __name__ == "__main__":
    main()
