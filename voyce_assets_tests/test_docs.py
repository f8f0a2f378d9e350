"""The README is the front door and docs/ holds the rest: every relative link between them
resolves, to a file that exists and, for ``#anchor`` links, to a heading of that file."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README_MAX_LINES = 200

_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$")
_CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
# The text may wrap onto the next line; a target may carry a "title".
_LINK = re.compile(r'\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)')


def _prose(path: Path) -> list[tuple[int, str]]:
    """The file's lines outside fenced code blocks, numbered from 1."""
    lines, fenced = [], False
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append((number, line))
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation dropped but - and _, spaces -."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The file's heading anchors; a repeated heading gets -1, -2, ... as on GitHub."""
    found, counts = set(), {}
    for _, line in _prose(path):
        if match := _HEADING.match(line):
            base = slug(match.group(1))
            found.add(f"{base}-{counts[base]}" if base in counts else base)
            counts[base] = counts.get(base, 0) + 1
    return found


def broken_links(path: Path) -> list[str]:
    """Every relative link of the markdown file that does not resolve, as 'file:line: why'."""
    # The prose as one text, code blocks blanked and line numbers kept: a link's text may
    # wrap onto the next line.
    prose = dict(_prose(path))
    count = len(path.read_text().splitlines())
    text = "\n".join(_CODE_SPAN.sub("code", prose.get(n, "")) for n in range(1, count + 1))
    problems = []
    for match in _LINK.finditer(text):
        target = match.group(1)
        if re.match(r"(https?|mailto):", target):
            continue
        file, _, anchor = target.partition("#")
        resolved = (path.parent / file).resolve() if file else path
        where = f"{path.name}:{text.count(chr(10), 0, match.start()) + 1}: {target}"
        if not resolved.exists():
            problems.append(f"{where}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            problems.append(f"{where}: no heading with anchor #{anchor}")
    return problems


def _documents() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def test_every_relative_link_resolves():
    problems = [p for doc in _documents() for p in broken_links(doc)]
    assert not problems, "\n".join(problems)


def test_the_readme_is_a_front_door():
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines"
    assert any(line.startswith("make test") for line in lines)  # CI runs the README's command


def test_the_checker_reports_a_missing_file_and_an_unknown_anchor(tmp_path):
    (tmp_path / "target.md").write_text("# Target page\n\n## Known: `the` heading\n")
    doc = tmp_path / "doc.md"
    doc.write_text(
        "[ok](target.md) [ok](target.md#known-the-heading) [ok](#a-page) [web](https://x.y/z)\n"
        "# A page\n"
        "[gone](missing.md) and [wrong](target.md#unknown)\n"
        "```\n[in a code block](missing.md)\n```\n"
        '[a link that\nwraps](gone-too.md) and [titled](target.md#nope "a title")\n'
    )
    problems = broken_links(doc)
    assert problems == [
        "doc.md:3: missing.md: no such file",
        "doc.md:3: target.md#unknown: no heading with anchor #unknown",
        "doc.md:7: gone-too.md: no such file",
        "doc.md:8: target.md#nope: no heading with anchor #nope",
    ]


def test_slugs_follow_github():
    assert slug("GPU steps on Databricks: the step launcher or Pipes") == (
        "gpu-steps-on-databricks-the-step-launcher-or-pipes"
    )
    assert slug("Delta maintenance (OPTIMIZE / VACUUM)") == "delta-maintenance-optimize--vacuum"
    assert slug("The `voyce` command") == "the-voyce-command"
    assert slug("7. How Databricks fails, and what our launchers do about it") == (
        "7-how-databricks-fails-and-what-our-launchers-do-about-it"
    )
