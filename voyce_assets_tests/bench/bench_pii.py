"""Personal-data detector benchmark: quality on the labelled sets and throughput on one core.

1. recall, precision and damage (``voyce_assets_tests/privacy/score.py``) on the dev set
   (tuned on), the held-out set (not tuned on) and both;
2. ``redact`` over N transcripts of about 60 words (three labelled transcripts joined, so
   personal data, look-alikes and plain text in the proportions of the sets), in this one
   process (one core): transcripts/s and words/s, after a first call that loads the name
   lists (timed apart, as is the import in a fresh process).

Writes ``results/pii.md``; the last line printed is ``pii recall R damage D%`` (held-out).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from voyce_assets_tests.bench.common import peak_rss_mb

RESULTS = Path(__file__).parent / "results" / "pii.md"
TARGET_RECALL, TARGET_DAMAGE, TARGET_RATE = 0.95, 0.02, 500


def transcripts(rows: list[dict], n: int, words: int = 60) -> list[str]:
    """``n`` transcripts of about ``words`` words, each a run of consecutive labelled rows."""
    texts = [r["text"] for r in rows]
    out, i = [], 0
    while len(out) < n:
        parts = []
        while sum(len(p.split()) for p in parts) < words:
            parts.append(texts[i % len(texts)])
            i += 1
        out.append(" ".join(parts))
    return out


def feedback_examples() -> list[str]:
    """The text stage's labelled feedback (no gold spans here): what the redactor takes from
    ordinary feedback, where almost nothing is personal data but a staff member's name."""
    folder = Path(__file__).resolve().parents[2] / "voyce_assets" / "text" / "local" / "examples"
    return [
        json.loads(line)["text"] for path in sorted(folder.glob("*.jsonl")) for line in path.open()
    ]


def import_seconds() -> float:
    code = (
        "import time; t = time.perf_counter(); import voyce_assets.privacy.pii; "
        "print(time.perf_counter() - t)"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    return float(out.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=5000, help="transcripts for the throughput")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--show", action="store_true", help="print the feedback spans found")
    args = parser.parse_args()

    imported = import_seconds()
    from voyce_assets.privacy import pii
    from voyce_assets_tests.privacy.score import load, score

    started = time.perf_counter()
    pii.find("my name is Sarah Johnson")  # loads the name lists
    first_call = time.perf_counter() - started

    scores = {name: score(load(name), pii.find) for name in ("dev", "heldout", "all")}
    lowered = [{**row, "text": row["text"].lower()} for row in load("heldout")]
    scores["heldout, all lowercase"] = score(lowered, pii.find)
    examples = feedback_examples()
    redacted = [pii.find(t) for t in examples]
    kinds = Counter(e.type for found in redacted for e in found)
    plain = sum(len(t) - t.count(" ") for t in examples)
    taken = sum(e.end - e.start for found in redacted for e in found)

    texts = transcripts(load("all"), args.n)
    words = sum(len(t.split()) for t in texts)
    cpu, started = time.process_time(), time.perf_counter()
    found = sum(len(pii.redact(t).entities) for t in texts)
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu
    rate = len(texts) / seconds

    rows = []
    for name, s in scores.items():
        by_type = ", ".join(f"{t} {1 - s.missed[t] / n:.2f}" for t, n in sorted(s.per_type.items()))
        rows.append(
            f"| {name} | {s.gold:,} | {s.recall:.3f} | {s.precision:.3f} | {s.damage:.2%} "
            f"| {by_type} |"
        )
    held = scores["heldout"]
    report = "\n".join(
        [
            f"Personal-data detector benchmark ({pii.VERSION}), "
            f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, one process.",
            "",
            "| set | gold spans | recall | precision | damage | recall by type |",
            "|---|---:|---:|---:|---:|---|",
            *rows,
            "",
            f"- throughput: {len(texts):,} transcripts of {words / len(texts):.0f} words on "
            f"average in {seconds:.2f} s: **{rate:,.0f} transcripts/s**, {words / seconds:,.0f} "
            f"words/s; CPU {cpu:.2f} s, {len(texts) / cpu:,.0f} transcripts per CPU second (goal >= "
            f"{TARGET_RATE}/s on one core: "
            f"{'met' if rate >= TARGET_RATE else 'NOT met'} by the wall clock); {found:,} spans found",
            f"- import in a fresh process {imported * 1000:.0f} ms; first call (name lists "
            f"loaded) {first_call * 1000:.0f} ms; peak RSS {peak_rss_mb():.0f} MB",
            f"- the {len(examples):,} feedback texts of `voyce_assets/text/local/examples/` "
            f"(written for the sentiment classifier, unlabelled for personal data): "
            f"{sum(kinds.values())} spans found ({', '.join(f'{k} {v}' for k, v in sorted(kinds.items())) or 'none'}), "
            f"{taken / plain:.3%} of their characters; read them in `--show` output",
            f"- held-out targets: recall >= {TARGET_RECALL} "
            f"({'met' if held.recall >= TARGET_RECALL else 'NOT met'}), damage <= "
            f"{TARGET_DAMAGE:.0%} ({'met' if held.damage <= TARGET_DAMAGE else 'NOT met'})",
            "",
        ]
    )
    print(report)
    if args.show:
        for text, found in zip(examples, redacted, strict=True):
            for e in found:
                print(f"  {e.type:12} {text[e.start : e.end]!r:24} | {text[:100]}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report)
    print(f"pii recall {held.recall:.3f} damage {held.damage:.2%}")


if __name__ == "__main__":
    main()
