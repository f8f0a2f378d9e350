"""Text-stage benchmark (one run each, same texts for every contender, each in its own process):

1. embeddings: the enhanced_transcriptions asset over N transcripts (fresh cache) against
   sentence-transformers called directly on the same texts (goal: >= 0.9x its throughput);
2. ``voyce sentiment --provider local`` on 10,000 lines: texts/s and peak RSS;
3. a second materialization of sentiment + enhanced transcriptions (Claude against the local
   server): provider calls and embeddings computed, first and second time;
4. Claude in Message Batches mode over 10,000 texts against the local server: wall time,
   peak RSS, calls made;
5. Claude's cost per 10,000 transcripts with and without prompt caching (the fixed
   instructions marked ``cache_control``), in batch mode (prod's) and Messages mode, against
   the local server, which counts tokens and keeps a prompt cache as the API does: tokens by
   kind and dollars at the price table's prices. The last line printed reads
   ``prompt caching saves P%`` (batch mode).

Texts are two-sentence feedback composed from the labelled examples (distinct lines, so the
cache cannot help). ``--quick`` runs each part at a tenth of its size (cost still quoted per
10,000 transcripts). Writes ``results/text.md`` (``results/text-quick.md`` with ``--quick``).
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
QUICK_RESULTS = Path(__file__).parent / "results" / "text-quick.md"
TOKEN_KINDS = ("input_tokens", "cache_write_tokens", "cache_read_tokens", "output_tokens")
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
    tokens = {k: sum(getattr(r, k) for r in results) for k in TOKEN_KINDS}
    from voyce_assets.resources import Pricing

    cost = Pricing().token_cost("anthropic", "batch", **tokens)
    return {
        "seconds": seconds,
        "rss_mb": peak_rss_mb(),
        "calls": calls,
        "ok": ok,
        **tokens,
        "cost_usd": float(cost),
    }


def child_caching(n: int) -> dict:
    """Claude over ``n`` distinct transcripts, with and without prompt caching, in both
    modes, each run against a fresh local server (a cold prompt cache) and a fresh text
    cache: every kind of token billed, and its price."""
    from voyce_assets.resources import Pricing
    from voyce_assets.text.cache import TextCache
    from voyce_assets.text.providers.anthropic import AnthropicAnalyzer

    lines = texts(n, seed=23)
    pricing = Pricing()
    out = {}
    for mode in ("batch", "messages"):
        for caching in (True, False):
            root = Path(tempfile.mkdtemp(prefix="bench-text-"))
            with fake_claude() as (url, served):
                analyzer = AnthropicAnalyzer(
                    api_key=KEY,
                    base_url=url,
                    mode=mode,
                    prompt_caching=caching,
                    batch_poll_seconds=0.2,
                    cache=TextCache(path=str(root / "cache.sqlite")),
                    timeout_seconds=300,
                )
                results = analyzer.analyze(lines)
                served()
            assert all(r.ok for r in results)
            tokens = {k: sum(getattr(r, k) for r in results) for k in TOKEN_KINDS}
            cost = pricing.token_cost("anthropic", mode, **tokens)
            out[f"{mode}/{'cached' if caching else 'plain'}"] = {
                **tokens,
                "texts": n,
                "cost_usd": float(cost),
                "model": analyzer.model,
            }
    return out


def caching_lines(caching: dict) -> list[str]:
    """The prompt-caching section: per 10,000 transcripts, tokens and dollars."""
    lines = [
        "## Claude with and without prompt caching, per 10,000 transcripts",
        "",
        f"{next(iter(caching.values()))['model']} at the price table's prices, against the "
        "local server (its token counts: four characters of the request a token, plus the "
        "313-token tool-use system prompt; a cold prompt cache at the start of each run). "
        f"Measured over {next(iter(caching.values()))['texts']:,} transcripts, scaled to "
        "10,000 (the run's one cache write scaled too: a little over what 10,000 pay).",
        "",
        "| mode | prompt caching | input | cache write | cache read | output | USD per 10,000 "
        "| USD per request |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for key, r in caching.items():
        mode, kind = key.split("/")
        scale = 10_000 / r["texts"]
        counts = " | ".join(f"{round(r[k] * scale):,}" for k in TOKEN_KINDS)
        lines.append(
            f"| {mode} | {'on' if kind == 'cached' else 'off'} | {counts} | "
            f"{r['cost_usd'] * scale:.2f} | {r['cost_usd'] / r['texts']:.6f} |"
        )
    batch_on, batch_off = caching["batch/cached"], caching["batch/plain"]
    fixed = batch_on["cache_read_tokens"] / max(1, batch_on["texts"] - 1)
    per_request = sum(batch_off[k] for k in TOKEN_KINDS if k != "output_tokens")
    lines += [
        "",
        f"Of each request's {per_request / batch_off['texts']:,.0f} input tokens, "
        f"{fixed:,.0f} are the fixed instructions: written to the cache once, then read at "
        "0.1x the input price. Caching saves "
        f"{saving(caching, 'batch'):.1f}% of the cost in batch mode, "
        f"{saving(caching, 'messages'):.1f}% in Messages mode.",
        "",
    ]
    return lines


def saving(caching: dict, mode: str = "batch") -> float:
    on, off = caching[f"{mode}/cached"], caching[f"{mode}/plain"]
    return 100 * (1 - on["cost_usd"] / off["cost_usd"])


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
    parser.add_argument("--quick", action="store_true", help="a tenth of every size")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.child:
        fn = {
            "standalone": child_standalone,
            "asset": child_asset,
            "second": child_second,
            "batch": child_batch,
            "caching": child_caching,
        }[args.child]
        print(json.dumps(fn(args.n)))
        return
    tenth = 10 if args.quick else 1
    embed_n = args.n // tenth
    standalone = _child("standalone", embed_n)
    asset = _child("asset", embed_n)
    cli_n, second_n, batch_n = 10_000 // tenth, 1000 // tenth, 10_000 // tenth
    cli = cli_local(cli_n)
    second = _child("second", second_n)
    batch = _child("batch", batch_n)
    caching = _child("caching", 10_000 // tenth)
    ratio = asset["texts_per_s"] / standalone["texts_per_s"]
    lines = [
        "# Text stage benchmark",
        "",
        f"Measured {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} CPUs, one run "
        "each, every contender in its own process (`make bench`"
        + (", `--quick`: a tenth of every size" if args.quick else "")
        + ").",
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
        f"## `voyce sentiment --provider local`, {cli_n:,} lines",
        "",
        f"{cli['texts_per_s']:.0f} texts/s ({cli['seconds']:.1f} s wall, process start "
        f"included), peak RSS {cli['rss_mb']:.0f} MB.",
        "",
        f"## Second materialization (Claude against the local server, {second_n:,} transcripts)",
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
        f"## Claude Message Batches mode, {batch_n:,} texts against the local server",
        "",
        f"{batch['seconds']:.1f} s wall, peak RSS {batch['rss_mb']:.0f} MB, {batch['ok']} "
        f"analyses; calls: {json.dumps(batch['calls'], sort_keys=True)}; "
        f"{batch['input_tokens']:,} input, {batch['cache_write_tokens']:,} cache-write, "
        f"{batch['cache_read_tokens']:,} cache-read and {batch['output_tokens']:,} output "
        f"tokens = ${batch['cost_usd']:.2f} at batch prices (the local server's token counts, "
        "prompt caching on).",
        "",
        *caching_lines(caching),
        f"prompt caching saves {saving(caching):.0f}%",
    ]
    (QUICK_RESULTS if args.quick else RESULTS).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
