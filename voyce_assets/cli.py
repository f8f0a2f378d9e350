"""The ``voyce`` console script: database, catalog and demo commands.

Commands use the same resources as the code location (chosen by ``VOYCE_ENV``), so what a
command does is what an asset run would do. Configuration problems print one line naming the
setting and exit with status 2.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import functools
import os
import re
import sys
import time
from pathlib import Path

import click

from voyce_assets.settings import ConfigError, voyce_env, voyce_home


def _config_errors(func):
    """Turn a ConfigError anywhere in the cause chain into one line on stderr."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except Exception as exc:
            cause: BaseException | None = exc
            while cause is not None and not isinstance(cause, ConfigError):
                cause = cause.__cause__ or cause.__context__
            if cause is None:
                raise
            click.echo(f"voyce: {cause}", err=True)
            sys.exit(2)

    return wrapper


def _resource(key: str):
    """The environment's resource ``key`` with its EnvVars resolved."""
    from voyce_assets.environments import resources_for

    return _initialized(resources_for()[key], key)


_OPEN = contextlib.ExitStack()
atexit.register(_OPEN.close)


def _initialized(resource, key: str = "resource"):
    """``resource`` with its EnvVars resolved; a missing one is a one-line ConfigError."""
    try:
        # Entered for the life of the command: resources with nested resources (the text
        # stage's) are only initialized as a context manager.
        return _OPEN.enter_context(resource.process_config_and_initialize_cm())
    except Exception as exc:
        missing = re.findall(r'environment variable "(\w+)" which is not set', str(exc))
        if missing:
            raise ConfigError(
                ", ".join(dict.fromkeys(missing)),
                f"not set (needed by the {key} resource with VOYCE_ENV={voyce_env()})",
            ) from None
        raise ConfigError(f"{key} resource", str(exc).splitlines()[0]) from None


@click.group()
@click.version_option(package_name="voyce-assets")
def main() -> None:
    """Voyce voice-feedback pipeline: local database, Unity Catalog and demo commands."""


# ---- db -------------------------------------------------------------------------------------


@main.group()
def db() -> None:
    """The Voyce app database (embedded PostgreSQL locally unless VOYCE_SOURCE_URL is set)."""


@db.command("url")
@click.option("--show-password", is_flag=True, help="Print the password instead of ***.")
@_config_errors
def db_url(show_password: bool) -> None:
    """Print the app database URL in use (starts the embedded server if needed)."""
    from voyce_assets.resources.app_db import libpq_url

    app_db = _resource("app_db")
    app_db.check_connection()
    click.echo(libpq_url(app_db.url(), show_password=show_password))


@db.command("start")
@_config_errors
def db_start() -> None:
    """Start (or reuse) the embedded PostgreSQL server."""
    app_db = _resource("app_db")
    app_db.check_connection()
    click.echo(f"running: {app_db.describe()}")


@db.command("stop")
@_config_errors
def db_stop() -> None:
    """Stop the embedded PostgreSQL server under $VOYCE_HOME (fast shutdown)."""
    from voyce_assets.resources.app_db import stop_embedded_server
    from voyce_assets.settings import voyce_home

    stopped = stop_embedded_server(voyce_home() / "pg")
    click.echo("stopped" if stopped else "not running")


@db.command("status")
@_config_errors
def db_status() -> None:
    """Say whether the embedded server runs, and its PID."""
    from voyce_assets.resources.app_db import embedded_server_pid
    from voyce_assets.settings import voyce_home

    data_dir = voyce_home() / "pg"
    pid = embedded_server_pid(data_dir) if (data_dir / "PG_VERSION").exists() else None
    click.echo(f"running (pid {pid}) in {data_dir}" if pid else f"not running ({data_dir})")


# ---- catalog --------------------------------------------------------------------------------


@main.group()
def catalog() -> None:
    """The Unity Catalog spec: DDL and setup."""


@catalog.command("ddl")
@click.option(
    "--dialect",
    type=click.Choice(["databricks", "postgres"]),
    default="databricks",
    show_default=True,
    help="databricks: Unity Catalog DDL of all tables and volumes; postgres: the app schema.",
)
@click.option("--catalog", "catalog_name_", help="Catalog name (default: the environment's).")
@click.option("--location-root", help="Cloud URI for external tables (databricks only).")
@click.option("--pg-schema", default="public", show_default=True, help="PostgreSQL schema.")
@_config_errors
def catalog_ddl(
    dialect: str, catalog_name_: str | None, location_root: str | None, pg_schema: str
) -> None:
    """Print the DDL derived from the catalog spec."""
    from voyce_assets.ddl import as_script, databricks_ddl, postgres_ddl
    from voyce_assets.settings import catalog_name

    if dialect == "postgres":
        click.echo(as_script(postgres_ddl(pg_schema)), nl=False)
    else:
        click.echo(
            as_script(databricks_ddl(catalog_name_ or catalog_name(), location_root)), nl=False
        )


@catalog.command("setup")
@_config_errors
def catalog_setup_cmd() -> None:
    """Materialize ``catalog_setup`` (idempotent) and report each object."""
    from voyce_assets.demo.run import materialize_catalog_setup

    for line in materialize_catalog_setup():
        click.echo(line)


# ---- speech to text ---------------------------------------------------------------------------


@main.command("transcribe")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "--engine",
    type=click.Choice(["faster-whisper", "openai-whisper"]),
    help="Default: the environment's.",
)
@click.option("--model", help="Model size (tiny.en ...) or local path. Default: the environment's.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), help="Default: the environment's.")
@_config_errors
def transcribe_cmd(
    files: tuple[str, ...], engine: str | None, model: str | None, device: str | None
) -> None:
    """Transcribe recordings with the asset's transcriber; one JSON line per file.

    Keys: path, text, language, confidence, duration_seconds, processing_seconds, error (null
    when fine). The exit status is 1 when any file failed.
    """
    import json
    import time

    transcriber = _resource("transcriber")
    overrides = {k: v for k, v in {"engine": engine, "model": model, "device": device}.items() if v}
    if overrides:
        transcriber = transcriber.model_copy(update=overrides)
    started = time.perf_counter()
    try:
        # The asset's steps: decode, normalize, 16-bit copy, transcribed together in
        # batch_size chunks (packed), so the text and confidence are the asset's.
        results = transcriber.transcribe_files([Path(p) for p in files])
    except Exception as exc:  # an engine or setting that cannot work: say so per file
        error = f"{type(exc).__name__}: {exc}"
        results = [None] * len(files)
    elapsed = time.perf_counter() - started
    failed = False
    for path, result in zip(files, results, strict=True):
        transcript = result.transcript if result else None
        line = {
            "path": path,
            "text": transcript.text if transcript else None,
            "language": transcript.language if transcript else None,
            "confidence": transcript.confidence if transcript else None,
            "duration_seconds": round(result.duration_seconds, 3)
            if result and result.duration_seconds is not None
            else None,
            "error": result.error if result else error,
            # Whisper's time for this recording (a packed window's, shared out by length).
            "processing_seconds": round(
                transcript.processing_seconds if transcript else elapsed / len(files), 3
            ),
        }
        failed |= line["error"] is not None
        click.echo(json.dumps(line))
    if failed:
        sys.exit(1)


# ---- text --------------------------------------------------------------------------------------


def _lines(file: str | None):
    """Lines of ``file`` (or stdin), newline stripped, lazily: thousands stream through."""
    handle = open(file, encoding="utf-8") if file else sys.stdin  # noqa: SIM115
    try:
        for line in handle:
            yield line.rstrip("\r\n")
    finally:
        if file:
            handle.close()


@main.command("sentiment")
@click.option(
    "--file", "file", type=click.Path(exists=True, dir_okay=False), help="Default: stdin."
)
@click.option(
    "--provider",
    type=click.Choice(["local", "anthropic", "openai"]),
    help="Default: the environment's (VOYCE_SENTIMENT_PROVIDER).",
)
@click.option("--batch-size", type=int, default=1024, show_default=True, help="Lines per batch.")
@_config_errors
def sentiment_cmd(file: str | None, provider: str | None, batch_size: int) -> None:
    """Analyse texts, one per line; one JSON line each, in input order.

    Keys: text and the sentiment_analysis table's fields (sentiment_label, sentiment_score,
    sentiment_confidence, emotions, key_phrases, topics, named_entities, urgency, summary,
    action_items, model_used, cached, input_tokens, output_tokens, cache_write_tokens,
    cache_read_tokens, error_message). An empty line gives a row with an error. Texts
    analysed before come from the cache.
    """
    import itertools
    import json
    from dataclasses import asdict

    from voyce_assets.text.cleaning import clean_text
    from voyce_assets.text.providers.base import ProviderDown, ProviderUnusable
    from voyce_assets.text.resources import analyzer_for

    analyzer = _resource("sentiment_analyzer")
    if provider and provider != analyzer.provider:
        text_cache, embedder = _resource("text_cache"), _resource("embedder")
        analyzer = _initialized(analyzer_for(provider, voyce_env(), text_cache, embedder))
    lines = _lines(file)
    label = analyzer.label
    try:
        analyzer.check()
        while chunk := list(itertools.islice(lines, max(1, batch_size))):
            # Cleaned as the asset cleans a transcript: the same answer, the same cache entry.
            results = analyzer.analyze([clean_text(t) for t in chunk])
            for text, result in zip(chunk, results, strict=True):
                row = {
                    "text": text,
                    **result.fields(),
                    "model_used": label,
                    "cached": result.cached,
                    **asdict(result.tokens),
                    "error_message": None if result.ok else result.error,
                }
                click.echo(json.dumps(row))
            analyzer.recorded()  # the lines printed carry the tokens billed
    except ProviderUnusable as exc:
        raise ConfigError(f"--provider {analyzer.provider}", str(exc)) from None
    except ProviderDown as exc:
        click.echo(f"voyce: {exc}", err=True)
        sys.exit(1)


@main.command("redact")
@click.option(
    "--file",
    "file",
    required=True,
    type=click.Path(exists=True, dir_okay=False, allow_dash=True),
    help="Texts, one per line ('-': stdin).",
)
def redact_cmd(file: str) -> None:
    """Find personal data in texts, one per line; one JSON line each, in input order.

    Keys: redacted_text (each span replaced by its placeholder: [PERSON], [EMAIL], [PHONE],
    [CARD], [NATIONAL_ID], [ADDRESS], [IBAN]) and entities (type, start, end: offsets into
    the input line). Local and offline.
    """
    import json

    from voyce_assets.privacy.pii import redact

    for line in _lines(None if file == "-" else file):
        result = redact(line)
        row = {
            "redacted_text": result.text,
            "entities": [e.as_dict() for e in result.entities],
        }
        click.echo(json.dumps(row))


@main.command("search")
@click.argument("query")
@click.option(
    "--org", "organization_id", type=click.UUID, help="Only this organization's feedback."
)
@click.option(
    "--k", type=click.IntRange(1, 1000), default=5, show_default=True, help="How many results."
)
@_config_errors
def search_cmd(query: str, organization_id: str | None, k: int) -> None:
    """Print the feedback nearest in meaning to QUERY: score, date, sentiment, text."""
    from voyce_assets.text.search import search

    try:
        org = str(organization_id) if organization_id else None
        hits = search(_resource("app_db"), _resource("embedder"), query, k, org)
    except (LookupError, ValueError) as exc:
        click.echo(f"voyce: {exc}", err=True)
        sys.exit(1)
    for hit in hits:
        click.echo(
            f"{hit.score:.3f}  {hit.event_date}  {hit.sentiment_label or '-':8}  "
            f"{hit.voice_feedback_id}  {hit.text}"
        )


# ---- erase ----------------------------------------------------------------------------------


# Dagster's own events stay in the run's event log; the terminal gets what was removed.
_QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


def removed_lines(removed: dict[str, int]) -> list[str]:
    """What an erasure removed, one line a store or table; a store it could not reach from
    where it ran (``<store>_unchecked``: a volume not mounted) is said to be unchecked."""
    lines = []
    for key, count in sorted(removed.items()):
        if key.endswith("_unchecked") and count:
            store = key.removesuffix("_unchecked")
            lines.append(f"{store}: NOT CHECKED (not reachable from here: erase again where it is)")
        elif count:
            lines.append(f"{key}: {count}")
    return lines


def erase_subject(subject_type: str, subject_id: str, purge: bool) -> tuple[bool, list[str]]:
    """Run the ``erasure`` job's asset for today in process, then recompute the analytics
    partitions that counted the subject; (success, lines saying what was removed)."""
    from dagster import AssetsDefinition, DagsterInstance, materialize

    from voyce_assets.analytics.erasure import recompute_partitions
    from voyce_assets.definitions import defs
    from voyce_assets.operations.erasure import erasure_log, run_config
    from voyce_assets.settings import ensure_dagster_home

    ensure_dagster_home()
    instance = DagsterInstance.get()
    resources = dict(defs.resources or {})
    today = dt.datetime.now(dt.UTC).date().isoformat()
    result = materialize(
        [erasure_log],
        instance=instance,
        resources=resources,
        partition_key=today,
        run_config={**run_config(subject_type, [subject_id], purge=purge), **_QUIET},
        raise_on_error=False,
    )
    if not result.success:
        failures = [
            e.event_specific_data.error.message.strip() for e in result.get_step_failure_events()
        ]
        return False, [f"erasure failed: {'; '.join(failures) or 'see the run ' + result.run_id}"]
    (event,) = result.get_asset_materialization_events()
    meta = event.materialization.metadata
    removed = meta["removed"].value
    days = [dt.date.fromisoformat(d) for d in meta["feedback_days"].value]
    lines = removed_lines(removed)
    if not lines:
        lines = ["nothing left to remove (already erased, or never held)"]
    assets = [a for a in defs.assets or [] if isinstance(a, AssetsDefinition) and a.is_executable]
    plan = recompute_partitions(_resource("lakehouse"), days)
    for day, keys in plan.items():
        rerun = materialize(
            assets,
            selection=keys,
            instance=instance,
            resources=resources,
            partition_key=day,
            run_config=_QUIET,
            raise_on_error=False,
        )
        state = "recomputed" if rerun.success else "FAILED to recompute"
        lines.append(f"analytics {day}: {state} {len(keys)} tables")
        if not rerun.success:
            return False, lines
    lines.append(
        "superseded Delta files vacuumed now (no time travel to before the erasure)"
        if purge
        else "superseded Delta files go with the weekly VACUUM after the tables' retention "
        "(the erasure log's vacuum_after)"
    )
    return True, lines


@main.command("erase")
@click.option("--user", "user", type=click.UUID, help="Erase this user and their feedback.")
@click.option("--feedback", "feedback", type=click.UUID, help="Erase this feedback.")
@click.option(
    "--organization",
    "organization",
    type=click.UUID,
    help="Erase this organization, its users and their feedback.",
)
@click.option(
    "--purge",
    is_flag=True,
    help="Also delete the superseded Delta files now (VACUUM, retention 0: no time travel "
    "to before the erasure).",
)
@_config_errors
def erase_cmd(user, feedback, organization, purge: bool) -> None:
    """Right to erasure: remove a user, a feedback or an organization from every table,
    volume, cache and index, recompute the analytics days that counted them, and log the
    request (hashed) in raw_data.erasure_log."""
    chosen = [
        (t, v)
        for t, v in (("user", user), ("feedback", feedback), ("organization", organization))
        if v
    ]
    if len(chosen) != 1:
        click.echo("voyce: name exactly one of --user, --feedback, --organization", err=True)
        sys.exit(2)
    ((subject_type, subject_id),) = chosen
    ok, lines = erase_subject(subject_type, str(subject_id), purge)
    for line in lines:
        click.echo(line, err=not ok and line is lines[-1])
    if not ok:
        sys.exit(1)


@main.command("graph")
@click.option(
    "--write", is_flag=True, help="Rewrite the graph block in docs/asset-graph.md instead."
)
def graph_cmd(write: bool) -> None:
    """Print the asset graph as a mermaid flowchart (one subgraph per stage)."""
    from voyce_assets.asset_graph import BEGIN, DOC, END, doc_block, mermaid
    from voyce_assets.definitions import defs

    if not write:
        click.echo(mermaid(defs), nl=False)
        return
    path = Path(__file__).resolve().parent.parent / DOC
    text = path.read_text()
    start, end = text.index(BEGIN), text.index(END) + len(END)
    path.write_text(text[:start] + doc_block(defs) + text[end:])
    click.echo(f"updated {path}")


@main.command("report")
@click.option(
    "--date",
    "day",
    type=click.DateTime(["%Y-%m-%d"]),
    help="The day to report on (default: the last day the daily summary has).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    help="Where to write the HTML (default: $VOYCE_HOME/reports/voyce-report-DATE.html).",
)
@_config_errors
def report_cmd(day: dt.datetime | None, out: str | None) -> None:
    """Write one self-contained HTML page of a day's analytics (opens without a server)."""
    from voyce_assets.analytics.report import latest_day, write

    lakehouse = _resource("lakehouse")
    date = day.date() if day else latest_day(lakehouse)
    if date is None:
        click.echo(
            "voyce: no analytics yet: materialize analytics/daily_feedback_summary first "
            "(e.g. `voyce demo run`)",
            err=True,
        )
        sys.exit(1)
    click.echo(str(write(lakehouse, date, Path(out) if out else None)))


@main.group()
def whisper() -> None:
    """Whisper model weights."""


@whisper.command("import-ct2")
@click.argument("src", type=click.Path(exists=True, file_okay=False))
@click.argument("dst", type=click.Path(dir_okay=False))
def whisper_import_ct2(src: str, dst: str) -> None:
    """Build an openai-whisper checkpoint DST (.pt) from the CTranslate2 model folder SRC."""
    from voyce_assets.voice.whisper.convert import import_ct2

    dims = import_ct2(Path(src), Path(dst))
    layers = f"{dims['n_audio_layer']}+{dims['n_text_layer']} layers"
    click.echo(
        f"wrote {dst}: {layers}, width {dims['n_audio_state']}, vocabulary {dims['n_vocab']}"
    )


# ---- demo -----------------------------------------------------------------------------------


def _demo_options(func):
    options = [
        click.option("--days", default=7, show_default=True, help="Complete UTC days of data."),
        click.option("--per-day", default=20, show_default=True, help="Voice feedback per day."),
        click.option("--seed", default=42, show_default=True, help="Random seed (deterministic)."),
        click.option(
            "--end-date",
            type=click.DateTime(formats=["%Y-%m-%d"]),
            help="Exclusive end of the demo window (default: today, UTC).",
        ),
        click.option(
            "--force",
            is_flag=True,
            help="Allow replacing the app tables of a VOYCE_SOURCE_URL database.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _seed(days: int, per_day: int, seed: int, end_date: dt.datetime | None, force: bool):
    from voyce_assets.demo.seed import DemoConfig
    from voyce_assets.demo.seed import seed as seed_demo

    if voyce_env() != "local":
        raise ConfigError("VOYCE_ENV", "demo data is only seeded locally (VOYCE_ENV=local)")
    app_db = _resource("app_db")
    if getattr(app_db, "source_url", None) and not force:
        raise ConfigError(
            "VOYCE_SOURCE_URL",
            f"seeding replaces the app tables of {app_db.describe()}; pass --force to allow it",
        )
    app_db.check_connection()
    lakehouse = _resource("lakehouse")
    from voyce_assets.catalog import volume

    config = DemoConfig(
        days=days, per_day=per_day, seed=seed, end_date=end_date.date() if end_date else None
    )
    audio_root = Path(lakehouse.volume_path(volume("raw_data/audio_files")))
    return config, seed_demo(app_db.engine(), audio_root, config)


@main.group()
def demo() -> None:
    """Demo data for a laptop: seed the app database, then run the pipeline on it."""


@demo.command("seed")
@_demo_options
@_config_errors
def demo_seed(**kwargs) -> None:
    """Recreate the app tables and fill them with deterministic demo data and audio."""
    _, summary = _seed(**kwargs)
    for line in summary.lines():
        click.echo(line)


@contextlib.contextmanager
def _warming_librosa():
    """librosa's kernels compiled into the numba cache by a background process while the
    demo seeds and transcribes, whose steps leave a core idle: the features step then finds
    them compiled (on a fresh machine about 30 s off the demo). Only a cache: if the process
    is slow or fails, the step compiles them itself. Its output goes where stdout goes."""
    import subprocess

    cache = Path(os.environ.get("NUMBA_CACHE_DIR") or voyce_home() / "numba-cache")
    if cache.is_dir() and any("librosa" in str(p) for p in cache.rglob("*.nbi")):
        yield  # compiled before: nothing to warm
        return
    warm = subprocess.Popen(
        [sys.executable, "-c", "from voyce_assets.voice.audio.features import warm; warm()"]
    )
    try:
        yield
    finally:
        if warm.poll() is None:
            warm.terminate()
        warm.wait()


@demo.command("run")
@_demo_options
@_config_errors
def demo_run(**kwargs) -> None:
    """Seed, then materialize catalog_setup and every buildable asset for the demo days.

    The terminal gets a progress line per run and the summary; everything else (Dagster's
    events, libraries' warnings) goes to a log file under $VOYCE_HOME/logs."""
    from voyce_assets.demo.console import log_path, logged_to
    from voyce_assets.demo.run import materialize_demo

    log = log_path()
    with logged_to(log) as say, _warming_librosa():
        say(f"log: {log}")
        started = time.monotonic()
        config, summary = _seed(**kwargs)
        for line in summary.lines():
            say(line)
        say(f"seeded in {time.monotonic() - started:.0f} s")
        ok = materialize_demo(config.partition_dates(), say)
        say(f"log: {log}")
        say("the UI: `make ui`, then http://127.0.0.1:3000")
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
