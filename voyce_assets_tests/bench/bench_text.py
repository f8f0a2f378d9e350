"""Text-stage benchmark (one run each, same texts for every contender, each in its own process):

1. embeddings: the enhanced_transcriptions asset over N transcripts (fresh cache) against
   sentence-transformers called directly on the same texts (goal: >= 0.9x its throughput);
2. ``voyce sentiment --provider local`` on 10,000 lines: texts/s and peak RSS;
3. a second materialization of sentiment + enhanced transcriptions (Claude against the local
   server): provider calls and embeddings computed, first and second time;
4. Claude in Message Batches mode over 10,000 texts against the local server: wall time,
   peak RSS, calls made.

Texts are two-sentence feedback composed from the labelled examples (distinct lines, so the
cache cannot help). Writes ``results/text.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import multiprocessing
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from voyce_assets_tests.bench.common import peak_rss_mb, run_script

RESULTS = Path(__file__).parent / "results" / "text.md"
KEY = "sk-ant-bench-not-a-secret"


def texts(n: int, seed: int = 7) -> list[str]:
    from voyce_assets.text.local.classifier import load_examples

    pool = load_examples("train")[0] + load_examples("holdout")[0]
    rng = random.Random(seed)
    out: list[str] = []
    seen = set()
    while len(out) < n:
        line = f"{rng.choice(pool)} {rng.choice(pool)}"
        if line not in seen:
            seen.add(line)
            out.append(line)
    return out


def _seed_lake(lakehouse, lines: list[str]) -> None:
    import pyarrow as pa

    from voyce_assets.catalog import table
    from voyce_assets.lake import replace_partitions
    from voyce_assets.privacy import pii

    day = dt.date(2026, 11, 20)
    created = dt.datetime.combine(day, dt.time(9), dt.UTC)
    feedback, transcripts = [], []
    for n, text in enumerate(lines):
        fid = f"00000000-0000-4000-8000-{n:012d}"
        feedback.append(
            {
                "id": fid,
                "organization_id": fid,
                "user_id": fid,
                "audio_file_path": "x.wav",
                "status": "completed",
                "created_at": created,
                "updated_at": created,
                "event_date": day,
            }
        )
        transcripts.append(
            {
                "id": f"10000000-0000-4000-8000-{n:012d}",
                "voice_feedback_id": fid,
                "transcription_text": text,
                "redacted_text": pii.redact(text).text,
                "redaction": pii.VERSION,
                "transcription_engine": "bench",
                "error_message": None,
                "language_detected": "en",
                "created_at": created,
                "event_date": day,
            }
        )
    for path, rows in (
        ("raw_data/voice_feedback", feedback),
        ("raw_data/transcriptions", transcripts),
    ):
        spec = table(path)
        uri = lakehouse.ensure_table(spec)
        schema = pa.schema([f.with_nullable(True) for f in spec.arrow_schema()])
        replace_partitions(uri, spec, [pa.RecordBatch.from_pylist(rows, schema=schema)], [day])


def _serve(conn, polls: int) -> None:
    from voyce_assets_tests.fakes.llm import FakeAnthropic

    with FakeAnthropic(api_key=KEY, batch_polls_before_end=polls) as fake:
        conn.send(fake.base_url)
        conn.recv()  # until the contender is done
        conn.send(dict(fake.calls))


@contextlib.contextmanager
def fake_claude(polls: int = 1):
    """The local Claude server in a process of its own (as the real API is elsewhere), so
    neither its CPU nor its memory counts as the contender's. Yields ``(base_url, calls)``;
    ``calls()`` asks the server how many requests of each kind it served."""
    ours, theirs = multiprocessing.Pipe()
    server = multiprocessing.Process(target=_serve, args=(theirs, polls), daemon=True)
    server.start()
    url = ours.recv()

    def calls() -> dict:
        ours.send("stop")
        return ours.recv()

    try:
        yield url, calls
    finally:
        server.join(timeout=30)
        server.kill()


def child_standalone(n: int) -> dict:
    lines = texts(n)
    from sentence_transformers import SentenceTransformer

    from voyce_assets.text.embedder import bundled_model_dir

    started = time.perf_counter()
    model = SentenceTransformer(str(bundled_model_dir()), device="cpu")
    vectors = model.encode(
        lines,
        batch_size=64,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    seconds = time.perf_counter() - started
    assert vectors.shape == (n, 384)
    return {"seconds": seconds, "texts_per_s": n / seconds, "rss_mb": peak_rss_mb()}


def child_asset(n: int) -> dict:
    import sentence_transformers  # noqa: F401  (imported before timing, as standalone does)
    from dagster import materialize

    from voyce_assets.resources import Lakehouse
    from voyce_assets.text.cache import TextCache
    from voyce_assets.text.embedder import Embedder
    from voyce_assets.text.enhanced_transcriptions import enhanced_transcriptions

    root = Path(tempfile.mkdtemp(prefix="bench-text-"))
    lakehouse = Lakehouse(catalog="c", root_uri=str(root / "lake"), volumes_root=str(root / "v"))
    _seed_lake(lakehouse, texts(n))
    embedder = Embedder(cache=TextCache(path=str(root / "cache.sqlite")))
    started = time.perf_counter()
    result = materialize(
        [enhanced_transcriptions],
        resources={"lakehouse": lakehouse, "embedder": embedder},
        partition_key="2026-11-20",
    )
    seconds = time.perf_counter() - started
    assert result.success
    mat = result.get_asset_materialization_events()[0].materialization
    computed = mat.metadata["embeddings_computed"].value
    assert computed == n, computed
    return {"seconds": seconds, "texts_per_s": n / seconds, "rss_mb": peak_rss_mb()}


def child_second(n: int) -> dict:
    from dagster import materialize

    from voyce_assets.resources import Lakehouse, Pricing
    from voyce_assets.text.cache import TextCache
    from voyce_assets.text.embedder import Embedder
    from voyce_assets.text.enhanced_transcriptions import enhanced_transcriptions
    from voyce_assets.text.providers.anthropic import AnthropicAnalyzer
    from voyce_assets.text.sentiment_analysis import sentiment_analysis

    root = Path(tempfile.mkdtemp(prefix="bench-text-"))
    lakehouse = Lakehouse(catalog="c", root_uri=str(root / "lake"), volumes_root=str(root / "v"))
    _seed_lake(lakehouse, texts(n))
    cache = TextCache(path=str(root / "cache.sqlite"))
    out = {}
    for run in ("first", "second"):
        with fake_claude() as (url, calls):
            resources = {
                "lakehouse": lakehouse,
                "pricing": Pricing(),
                "embedder": Embedder(cache=cache),
                "sentiment_analyzer": AnthropicAnalyzer(api_key=KEY, base_url=url, cache=cache),
            }
            started = time.perf_counter()
            result = materialize(
                [sentiment_analysis, enhanced_transcriptions],
                resources=resources,
                partition_key="2026-11-20",
            )
            seconds = time.perf_counter() - started
            served = calls()
        assert result.success
        metas = {
            e.materialization.asset_key.path[-1]: e.materialization.metadata
            for e in result.get_asset_materialization_events()
        }
        out[run] = {
            "seconds": round(seconds, 2),
            "provider_calls": served.get("messages", 0),
            "analysed": metas["sentiment_analysis"]["analysed"].value,
            "cached": metas["sentiment_analysis"]["cached"].value,
            "embeddings_computed": metas["enhanced_transcriptions"]["embeddings_computed"].value,
        }
    return out


def child_batch(n: int) -> dict:
    from voyce_assets.text.cache import TextCache
    from voyce_assets.text.providers.anthropic import AnthropicAnalyzer

    lines = texts(n)
    root = Path(tempfile.mkdtemp(prefix="bench-text-"))
    with fake_claude(polls=2) as (url, served):
        analyzer = AnthropicAnalyzer(
            api_key=KEY,
            base_url=url,
            mode="batch",
            batch_poll_seconds=0.5,
            cache=TextCache(path=str(root / "cache.sqlite")),
            timeout_seconds=300,
        )
        started = time.perf_counter()
        results = analyzer.analyze(lines)
        seconds = time.perf_counter() - started
        calls = served()
    ok = sum(r.ok for r in results)
    tokens_in = sum(r.input_tokens for r in results)
    tokens_out = sum(r.output_tokens for r in results)
    from voyce_assets.resources import Pricing

    cost = Pricing().token_cost("anthropic", "batch", tokens_in, tokens_out)
    return {
        "seconds": seconds,
        "rss_mb": peak_rss_mb(),
        "calls": calls,
        "ok": ok,
        "input_tokens": tokens_in,
        "output_tokens": tokens_out,
        "cost_usd": float(cost),
    }


def cli_local(n: int) -> dict:
    """``voyce sentiment --provider local`` over n lines, classifier fitted beforehand."""
    home = Path(tempfile.mkdtemp(prefix="bench-text-home-"))
    env = {**os.environ, "VOYCE_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    voyce = [sys.executable, "-m", "voyce_assets.cli", "sentiment", "--provider", "local"]
    subprocess.run(
        voyce,
        input="warm up: fit the classifier\n",
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    source = home / "lines.txt"
    source.write_text("\n".join(texts(n, seed=11)) + "\n")
    started = time.perf_counter()
    proc = subprocess.run(
        ["/usr/bin/time", "-f", "%M", *voyce, "--file", str(source)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    seconds = time.perf_counter() - started
    rows = proc.stdout.splitlines()
    assert len(rows) == n and all(json.loads(r)["sentiment_label"] for r in rows[:100])
    rss_kb = int(proc.stderr.strip().splitlines()[-1])
    return {"seconds": seconds, "texts_per_s": n / seconds, "rss_mb": rss_kb / 1024}


def _child(mode: str, n: int) -> dict:
    return run_script(__file__, "--child", mode, "--n", str(n))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child")
    parser.add_argument("--n", type=int, default=3000)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.child:
        fn = {
            "standalone": child_standalone,
            "asset": child_asset,
            "second": child_second,
            "batch": child_batch,
        }[args.child]
        print(json.dumps(fn(args.n)))
        return
    embed_n = args.n
    standalone = _child("standalone", embed_n)
    asset = _child("asset", embed_n)
    cli = cli_local(10_000)
    second = _child("second", 1000)
    batch = _child("batch", 10_000)
    ratio = asset["texts_per_s"] / standalone["texts_per_s"]
    lines = [
        "# Text stage benchmark",
        "",
        f"Measured {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} CPUs, one run "
        "each, every contender in its own process (`make bench`).",
        "",
        "## Embeddings (all-MiniLM-L6-v2, same texts, fresh cache)",
        "",
        "| contender | texts | seconds | texts/s | peak RSS |",
        "|---|---:|---:|---:|---:|",
        f"| sentence-transformers called directly | {embed_n} | {standalone['seconds']:.1f} | "
        f"{standalone['texts_per_s']:.0f} | {standalone['rss_mb']:.0f} MB |",
        f"| enhanced_transcriptions asset (Delta in and out, cache) | {embed_n} | "
        f"{asset['seconds']:.1f} | {asset['texts_per_s']:.0f} | {asset['rss_mb']:.0f} MB |",
        "",
        f"Asset / standalone throughput: **{ratio:.2f}x** (goal >= 0.9x).",
        "",
        "## `voyce sentiment --provider local`, 10,000 lines",
        "",
        f"{cli['texts_per_s']:.0f} texts/s ({cli['seconds']:.1f} s wall, process start "
        f"included), peak RSS {cli['rss_mb']:.0f} MB.",
        "",
        "## Second materialization (Claude against the local server, 1,000 transcripts)",
        "",
        "| run | provider calls | analysed | from cache | embeddings computed | seconds |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for run in ("first", "second"):
        r = second[run]
        lines.append(
            f"| {run} | {r['provider_calls']} | {r['analysed']} | {r['cached']} | "
            f"{r['embeddings_computed']} | {r['seconds']} |"
        )
    lines += [
        "",
        "## Claude Message Batches mode, 10,000 texts against the local server",
        "",
        f"{batch['seconds']:.1f} s wall, peak RSS {batch['rss_mb']:.0f} MB, {batch['ok']} "
        f"analyses; calls: {json.dumps(batch['calls'], sort_keys=True)}; "
        f"{batch['input_tokens']:,} input / {batch['output_tokens']:,} output tokens = "
        f"${batch['cost_usd']:.2f} at batch prices (the local server's token counts).",
        "",
    ]
    RESULTS.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
