"""Rate checks judged partition by partition, shared by the stages.

A run over a range of days (a backfill, the demo's week) must not average a bad day away
among clean ones: each partition of the run is judged on its own rows, the check fails when
any one is over the limit, and the failing partitions are named in the description and in
``failing_partitions`` (what the alert sensors and ``analytics/pipeline_health`` read).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from dagster import AssetCheckResult, AssetCheckSeverity, MetadataValue

EXAMPLES = 10
# The notebooks' alert, shared by the stages' failure checks: processing failures > 5%.
MAX_FAILURE_RATE = 0.05


def _key(day: dt.date | str) -> str:
    return day if isinstance(day, str) else day.isoformat()


def rate_check(
    name: str,
    rows: Iterable[dict],
    partitions: Sequence[str],
    *,
    day: Callable[[dict], dt.date | str],
    counts: Callable[[dict], bool],
    max_rate: float,
    rate_name: str = "failure_rate",
    what: str = "failed",
    severity: AssetCheckSeverity = AssetCheckSeverity.ERROR,
    example: Callable[[dict], str] | None = None,
) -> AssetCheckResult:
    """Fails when, in any partition, the share of rows for which ``counts`` holds is over
    ``max_rate``. ``partitions``: every partition of the run, so an empty one is judged (and
    passes) instead of vanishing; a row of a day outside them is judged on its own day.

    Metadata: ``failing_partitions`` (sorted keys), ``per_partition`` ({key: rows, counted,
    rate}), the range's own figures (``rate_name``, ``rows``, ``failed``) for reference only,
    and up to ``EXAMPLES`` examples.
    """
    per_day: dict[str, list[int]] = {_key(p): [0, 0] for p in partitions}
    examples: list[str] = []
    for r in rows:
        tally = per_day.setdefault(_key(day(r)), [0, 0])
        tally[0] += 1
        if counts(r):
            tally[1] += 1
            if example is not None and len(examples) < EXAMPLES:
                examples.append(example(r))
    detail = {
        key: {"rows": n, what: k, "rate": round(k / n, 4) if n else 0.0}
        for key, (n, k) in sorted(per_day.items())
    }
    # Compared unrounded: 1 in 19 is over 5% even though it rounds to 0.0526.
    failing = [key for key, (n, k) in sorted(per_day.items()) if n and k / n > max_rate]
    total = sum(n for n, _ in per_day.values())
    counted = sum(k for _, k in per_day.values())
    limit = f"alert above {max_rate:.0%}"
    if failing:
        description = (
            "; ".join(
                f"{key}: {detail[key][what]} of {detail[key]['rows']} rows {what} "
                f"({detail[key]['rate']:.1%})"
                for key in failing
            )
            + f" ({limit}, each partition judged on its own)"
        )
    elif total:
        worst = max(detail, key=lambda key: detail[key]["rate"])
        description = (
            f"every partition within the limit ({limit}); worst {worst}: "
            f"{detail[worst]['rate']:.1%}"
        )
    else:
        description = "no rows"
    metadata: dict[str, Any] = {
        "failing_partitions": failing,
        "per_partition": MetadataValue.json(detail),
        "max_rate": max_rate,
        rate_name: round(counted / total, 4) if total else 0.0,
        what: counted,
        "rows": total,
        "partitions": len(per_day),
    }
    if example is not None:
        metadata["examples"] = MetadataValue.json(examples)
    return AssetCheckResult(
        check_name=name,
        passed=not failing,
        severity=severity,
        description=description,
        metadata=metadata,
    )


def failing_partitions(days: Iterable[dt.date | str | None]) -> list[str]:
    """The partition keys of the bad rows of an every-row check, sorted, each once: such a
    check fails on one bad row anywhere, and names the days so an alert or a health count
    lands on them (``analytics/pipeline_health.failing_days``)."""
    return sorted({_key(d) for d in days if d is not None})


def named(failing: list[str]) -> str | None:
    """A description naming the failing partitions (None when there are none)."""
    return f"failing partitions: {', '.join(failing)}" if failing else None
