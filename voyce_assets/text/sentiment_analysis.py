"""``raw_data/sentiment_analysis``: the analyzer's verdict on every transcript of a partition.

One row per transcription with text. A transcription that failed or heard nothing gets no
row (it is counted as skipped). An answer that stays invalid after one retry is a row with
``error_message`` and no label, never a guess. Every row says what it cost (tokens, mode,
cached), so cost tracking is computed from the table itself.
"""

import collections
import datetime as dt
import json
from dataclasses import asdict

from dagster import AssetExecutionContext, Failure, MaterializeResult, MetadataValue, RetryPolicy

from voyce_assets.automation import hourly_after_upstream
from voyce_assets.catalog import SENTIMENT_LABELS, table
from voyce_assets.charts import bar_chart_png, markdown_table, png_markdown
from voyce_assets.feedback import existing_rows, row_id, write_partition
from voyce_assets.partitions import by_partition, partition_dates, record_partitions
from voyce_assets.privacy import pii
from voyce_assets.resources import Lakehouse, Pricing
from voyce_assets.settings import redact_pii
from voyce_assets.tables import table_asset
from voyce_assets.text.analysis import TOKEN_FIELDS, Result, text_hash
from voyce_assets.text.checks import (
    SENTIMENT_CHECKS,
    failure_rate_check,
    label_check,
    score_check,
)
from voyce_assets.text.cleaning import clean_text
from voyce_assets.text.providers.base import ProviderDown, ProviderUnusable, SentimentAnalyzer

TRANSCRIPTIONS = table("raw_data/transcriptions")
SENTIMENT = table("raw_data/sentiment_analysis")
# No free text (topics, key phrases ...): Dagster's event log cannot forget one person.
PREVIEW_COLUMNS = [
    "voice_feedback_id",
    "sentiment_label",
    "sentiment_score",
    "urgency",
    "cached",
    "error_message",
]


def analysable_text(transcript: dict) -> str:
    """The cleaned text the stage works on: the redacted transcript, personal data replaced
    by placeholders (the raw one only where the deployment turned redaction off). Empty for a
    transcription that failed, heard nothing, or has no redacted text: no row then, only a
    count, and never the raw text in its place."""
    return "" if transcript["error_message"] else clean_text(redacted(transcript))


def redacted(transcript: dict) -> str | None:
    """The transcript the text stage may read: ``redacted_text``, or the raw text where the
    deployment has redaction off (``redaction`` = 'off' and VOYCE_REDACT_PII still off); None
    when it was never redacted."""
    if transcript.get("redaction") == "off":
        # Made while the deployment had redaction off: raw only while it still is; once it
        # is on again, the rows not yet transcribed anew are redacted here.
        text = transcript["transcription_text"]
        return pii.redact(text).text if text and redact_pii() else text
    return transcript.get("redacted_text")


def _row(analyzer: SentimentAnalyzer, label: str, transcript: dict, text: str, result: Result):
    return {
        "id": row_id(transcript["id"], "sentiment"),
        "transcription_id": transcript["id"],
        "voice_feedback_id": transcript["voice_feedback_id"],
        # Lists are JSON columns in the table.
        **{k: json.dumps(v) if isinstance(v, list) else v for k, v in result.fields().items()},
        "model_used": label,
        "model_version": analyzer.prompt_version,
        "provider": analyzer.provider,
        "api_mode": result.mode,
        **asdict(result.tokens),
        "cached": result.cached,
        "text_sha256": text_hash(text),
        "processing_time_ms": round(result.seconds * 1000),
        "error_message": None if result.ok else (result.error or "no analysis"),
        "created_at": dt.datetime.now(dt.UTC),
        "event_date": transcript["event_date"],
    }


def analyse_transcripts(
    analyzer: SentimentAnalyzer, transcripts: list[dict]
) -> tuple[list[dict], list[dict]]:
    """``(rows, skipped)``: a row per analysable transcript, and the transcripts without one."""
    usable, texts, skipped = [], [], []
    for t in transcripts:
        text = analysable_text(t)
        if text:
            usable.append(t)
            texts.append(text)
        else:
            skipped.append(t)
    results = analyzer.analyze(texts) if texts else []
    label = analyzer.label
    return [
        _row(analyzer, label, t, x, r) for t, x, r in zip(usable, texts, results, strict=True)
    ], skipped


def carry_costs(lakehouse: Lakehouse, rows: list[dict], dates) -> None:
    """Rows answered from the cache keep what their text cost when the partition was written
    before: a re-run (the hourly automation on today and yesterday, a backfill) replaces the
    day's rows, and its cost would drop to 0 otherwise. A cached row gets the tokens of the
    row written for the same transcription before (same provider, model and mode: priced
    alike) on top of what it carries now (billed since, and in no written row)."""
    cached = [r for r in rows if r["cached"]]
    if not cached or not lakehouse.exists(SENTIMENT):
        return
    before = {
        r["id"]: r
        for r in lakehouse.read(
            SENTIMENT, dates, ["id", "provider", "model_used", "api_mode", *TOKEN_FIELDS]
        ).to_pylist()
    }
    for row in cached:
        old = before.get(row["id"])
        if old and all(old[k] == row[k] for k in ("provider", "model_used", "api_mode")):
            for k in TOKEN_FIELDS:
                row[k] += old[k] or 0  # NULL: written before the column existed


def _partition_metadata(rows: list[dict], skipped: list[dict], pricing: Pricing) -> dict:
    ok = [r for r in rows if not r["error_message"]]
    labels = collections.Counter(r["sentiment_label"] for r in ok)
    cost = sum(
        pricing.token_cost(r["provider"], r["api_mode"], **{k: r[k] for k in TOKEN_FIELDS})
        for r in rows
    )
    distribution = {label: labels.get(label, 0) for label in SENTIMENT_LABELS}
    meta = {
        "dagster/partition_row_count": len(rows),
        "analysed": sum(1 for r in rows if not r["cached"]),
        "cached": sum(1 for r in rows if r["cached"]),
        "failed": len(rows) - len(ok),
        "skipped_no_text": len(skipped),
        **{k: sum(r[k] for r in rows) for k in TOKEN_FIELDS},
        "token_cost_usd": float(cost),
        "label_distribution": MetadataValue.json(distribution),
        "preview": markdown_table(rows[:10], PREVIEW_COLUMNS),
    }
    if ok:
        meta["label_chart"] = png_markdown(
            bar_chart_png(distribution, "sentiment labels"), "sentiment labels"
        )
    return meta


@table_asset(
    SENTIMENT.path,
    deps=[TRANSCRIPTIONS.path],
    retry_policy=RetryPolicy(max_retries=2, delay=60),
    automation_condition=hourly_after_upstream(),
    kinds={"python"},
    # One at a time (dagster.yaml): runs share the provider's rate limit and the cache file.
    pool="text",
    required_resource_keys={"lakehouse", "sentiment_analyzer", "pricing"},
    description="The provider (local, Claude or OpenAI) is the `sentiment_analyzer` resource. "
    "Texts analysed before (same provider, model and prompt version) come from the "
    "content-hash cache and cost nothing.",
    checks=SENTIMENT_CHECKS,
)
def sentiment_analysis(context: AssetExecutionContext) -> MaterializeResult:
    lakehouse: Lakehouse = context.resources.lakehouse
    analyzer: SentimentAnalyzer = context.resources.sentiment_analyzer
    dates = partition_dates(context)
    transcripts = sorted(
        existing_rows(lakehouse, TRANSCRIPTIONS, dates).values(),
        key=lambda t: (t["event_date"], t["voice_feedback_id"]),
    )
    try:
        analyzer.check()
        rows, skipped = analyse_transcripts(analyzer, transcripts)
    except ProviderUnusable as exc:
        # A key, model or setting no retry can fix: fail before writing, and say so once.
        raise Failure(
            description=f"{analyzer.label} cannot work: {exc}", allow_retries=False
        ) from None
    except ProviderDown as exc:
        # Down or throttling: nothing written; the RetryPolicy tries again later, and what
        # was answered before the outage is in the cache already.
        raise Failure(description=f"{analyzer.label} is unavailable: {exc}") from None
    for row in rows:
        if row["error_message"]:
            context.log.warning(
                f"voice_feedback {row['voice_feedback_id']}: {row['error_message']}"
            )
    carry_costs(lakehouse, rows, dates)
    write_partition(lakehouse, SENTIMENT, rows, dates)
    # The rows carry every token billed for their texts (an earlier failed attempt's too):
    # recorded now, so a later run counts none of them again.
    analyzer.recorded()
    pricing: Pricing = context.resources.pricing
    rows_by_day = by_partition(context, rows, lambda r: r["event_date"])
    skipped_by_day = by_partition(context, skipped, lambda t: t["event_date"])
    record_partitions(
        context,
        {
            key: _partition_metadata(rows_by_day[key], skipped_by_day.get(key, []), pricing)
            for key in context.partition_keys
        },
    )
    stored = lakehouse.read(
        SENTIMENT,
        dates,
        [
            "id",
            "voice_feedback_id",
            "sentiment_label",
            "sentiment_score",
            "sentiment_confidence",
            "urgency",
            "error_message",
            "event_date",
        ],
    ).to_pylist()
    return MaterializeResult(
        metadata={"analyzer": analyzer.label, "prompt_version": analyzer.prompt_version},
        check_results=[
            label_check(stored),
            score_check(stored),
            failure_rate_check(stored, context.partition_keys),
        ],
    )
