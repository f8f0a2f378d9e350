"""SQL written once for several analytics files: a file names a macro as ``{{ name }}`` and
``render`` (through ``sql_asset.sql_text``, the one way a file is read) puts its text there.

A macro's later lines are indented to the column of its placeholder, so the rendered file
reads as if written by hand. Comments never hold a placeholder.

``cost_flag``: the cost views' ``is_flagged`` column, the notebook's rule (the catalog's
``COST_FLAG_P90`` / ``COST_FLAG_MEDIAN``, which the views' descriptions state too). It reads
``p.cost_per_feedback_usd`` against ``t.p90`` and ``t.median``, the thresholds of the row's
comparison set; a NULL comparison (no value, no thresholds) means "not flagged".
"""

import re

from voyce_assets.catalog import COST_FLAG_MEDIAN, COST_FLAG_P90

MACROS: dict[str, str] = {
    "cost_flag": (
        f"COALESCE(p.cost_per_feedback_usd > {COST_FLAG_P90} * t.p90\n"
        f"         OR p.cost_per_feedback_usd > {COST_FLAG_MEDIAN} * t.median, FALSE)"
        " AS is_flagged"
    ),
}

PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def render(sql: str) -> str:
    """``sql`` with every ``{{ name }}`` replaced by its macro; an unknown name is an error."""

    def expand(match: re.Match) -> str:
        name = match.group(1)
        if name not in MACROS:
            raise KeyError(f"unknown SQL macro {name!r}; known: {', '.join(MACROS)}")
        column = match.start() - (sql.rfind("\n", 0, match.start()) + 1)
        return MACROS[name].replace("\n", "\n" + " " * column)

    return PLACEHOLDER.sub(expand, sql)
