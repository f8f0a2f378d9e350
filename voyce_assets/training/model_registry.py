"""``ml_models/model_registry``: the four sentiment classifiers, trained, tracked, registered.

For the partition's day D: the training dataset of the window up to D (``window_days``, 90 by
default; 0: all history), sampled down to ``max_train_rows`` (stratified by label within each
split, ``training/sampling.py``) and read in batches as float32, split by its ``split``
column. Each family is fitted as a full pipeline (AutoML first, if it has a budget), tracked
as an MLflow run (parameters, what was sampled, validation and test metrics, confusion
matrices, feature importance, the model with its signature and an input example) and
registered as a new version of ``sentiment_classifier_<family>``. The best validation
macro-F1 confirmed on test becomes ``champion``, the next ``challenger``. The partition holds
one row per version trained for D; the older rows' stage follows the aliases.

A run over a range of days (a backfill) trains only the days its cadence names
(``train_on_weekdays``: Saturday, the day the weekly schedule trains); the range's other days
keep the rows they had. A run of one day always trains it, unless it is one of a backfill's
runs (a backfill follows the cadence on every run).
"""

import calendar
import datetime as dt
import json
import time
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    Config,
    Failure,
    MaterializeResult,
    MetadataValue,
    RetryPolicy,
)
from pydantic import Field

from voyce_assets.catalog import table
from voyce_assets.charts import bar_chart_png, markdown_table, png_markdown
from voyce_assets.features import BASE_FEATURES, EMBEDDING_DIM, FEATURE_NAMES
from voyce_assets.models import (
    CHALLENGER,
    CHAMPION,
    FAMILIES,
    STAGE_OF_ALIAS,
    model_id,
)
from voyce_assets.partitions import partition_dates, record_partitions
from voyce_assets.resources import Lakehouse, ModelRegistry
from voyce_assets.resources.mlflow import NOT_FOUND
from voyce_assets.tables import table_asset
from voyce_assets.training import families as fam
from voyce_assets.training import sampling
from voyce_assets.training.compute import TrainingCompute
from voyce_assets.training.device import Placement, place
from voyce_assets.training.evaluation import chance_macro_f1, choose, confusion_png, metrics
from voyce_assets.upstream import require_upstream

REGISTRY = table("ml_models/model_registry")
DATASET = table("processed_data/training_dataset")
MIN_CLASSES = 2
CHANCE_MARGIN = 0.05
# The weekly schedule (training/schedules.py, Sundays 02:00 UTC) trains the day before: the
# days a backfill trains by default are the days the schedule would have trained.
TRAINING_WEEKDAYS = ["Saturday"]
# The default row cap (train, validation and test together), from the memory budget: 500,000
# rows of 420 float32 features are 0.84 GB; fitting holds a few copies more (the imputer's
# output, the scaler's, the boosters' binned matrices), so a training peaks at a few GB (the
# benchmark measures it) whatever the history: inside the 16 GiB of the smallest default GPU
# node (g5.xlarge, resources/gpu_cluster.py) with room for the libraries. At 200,000 labelled
# feedback a day, the 90-day window holds 18M rows (~60 GB as stored doubles); 350,000 train
# rows still give each of three labels tens of thousands of examples (rare ones a 5% floor),
# and keep the weekly fit of the four families to hours on that node.
DEFAULT_MAX_TRAIN_ROWS = 500_000
Split, Data = sampling.Split, sampling.Data


class TrainingConfig(Config):
    """The training run's settings (the Launchpad shows them; the weekly schedule passes them)."""

    families: list[str] = Field(
        default=list(FAMILIES), description=f"Model families to train: {', '.join(FAMILIES)}."
    )
    window_days: int = Field(
        default=90,
        ge=0,
        description="Days of data up to the partition to train on; 0: all history.",
    )
    max_train_rows: int = Field(
        default=DEFAULT_MAX_TRAIN_ROWS,
        ge=0,
        description="Most rows (train, validation and test together) read from the window, "
        "sampled stratified by label within each split; bounds the run's memory. 0: no cap "
        "(memory then grows with the window).",
    )
    min_class_share: float = Field(
        default=0.05,
        ge=0,
        le=0.3,
        description="When sampling, each label keeps at least this share of the train rows (all "
        "its rows if it has fewer); validation and test keep the labels' true shares.",
    )
    train_on_weekdays: list[str] = Field(
        default=list(TRAINING_WEEKDAYS),
        description="In a run over a range of days (a backfill), the weekdays that train; the "
        "other days keep their rows. [] trains every day. A run of one day always trains, "
        "unless a backfill launched it.",
    )
    min_train_rows: int = Field(default=20, ge=1, description="Fewer training rows fail the run.")
    min_eval_rows: int = Field(
        default=3, ge=1, description="Fewer validation (or test) rows fail the run."
    )
    confirm_tolerance: float = Field(
        default=0.05,
        ge=0,
        description="How far below the best test macro-F1 the validation winner may score "
        "and still be champion.",
    )
    automl_trials: int = Field(
        default=0, ge=0, description="Optuna trials per family before the final fit; 0: defaults."
    )
    automl_timeout_seconds: float = Field(
        default=600, gt=0, description="Wall-clock limit of each family's search."
    )
    seed: int = 42
    device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto",
        description="auto: XGBoost on CUDA and LightGBM on the GPU where a probe fit finds "
        "one, else the CPU; cpu: never the GPU; cuda: fail at once without a usable GPU.",
    )
    distributed_min_rows: int = Field(
        default=1_000_000,
        ge=1,
        description="Train rows from which XGBoost trains with xgboost.spark across the "
        "cluster's workers (when training_compute has Spark).",
    )


def load(
    lakehouse: Lakehouse,
    day: dt.date,
    window_days: int,
    max_rows: int = 0,
    seed: int = 42,
    min_class_share: float = 0.0,
) -> Data:
    """The labelled vectors up to ``day`` (the last ``window_days`` days, or all), float32, at
    most ``max_rows`` of them (0: all; ``sampling.load``)."""
    return sampling.load(
        lakehouse, day, window_days, max_rows, seed=seed, min_class_share=min_class_share
    )


def training_days(
    dates: list[dt.date], weekdays: list[str], backfill: bool = False
) -> list[dt.date]:
    """The days of the run that train: those on ``weekdays``, except in a run of one day
    that is not part of a backfill (asked for by itself: it always trains)."""
    known = {name.lower(): n for n, name in enumerate(calendar.day_name)}
    unknown = sorted(w for w in weekdays if w.lower() not in known)
    if unknown:
        raise Failure(
            description=f"train_on_weekdays {unknown} not known; choose from "
            f"{', '.join(calendar.day_name)}",
            allow_retries=False,
        )
    if (len(dates) == 1 and not backfill) or not weekdays:
        return list(dates)
    chosen = {known[w.lower()] for w in weekdays}
    return [d for d in dates if d.weekday() in chosen]


def require_enough(planned: sampling.Plan, config: TrainingConfig, day: dt.date) -> None:
    """Too little data or one class only: fail, saying what was found and what is needed
    (from the survey: no vector is read before every day of the run is known to train)."""
    n = planned.sizes
    classes = planned.classes("train")
    data = planned
    short = (
        n["train"] < config.min_train_rows
        or min(n["validation"], n["test"]) < config.min_eval_rows
        or len(classes) < MIN_CLASSES
    )
    if short:
        raise Failure(
            description=f"not enough labelled data to train on up to {day}: found "
            f"{data.rows} rows (train {n['train']}, validation {n['validation']}, test "
            f"{n['test']}) and {len(classes)} class(es) in train {classes}; needs at least "
            f"{config.min_train_rows} train rows, {config.min_eval_rows} validation and test "
            f"rows each, and {MIN_CLASSES} classes",
            allow_retries=False,
        )


def _log_png(png: bytes, path: str) -> None:
    import tempfile
    from pathlib import Path

    import mlflow

    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / path
        file.write_bytes(png)
        mlflow.log_artifact(str(file))


def train_family(
    family: str,
    data: Data,
    config: TrainingConfig,
    registry: ModelRegistry,
    tags: dict,
    compute: TrainingCompute | None = None,
    placement: Placement | None = None,
) -> dict[str, Any]:
    """Fit, evaluate, track and register one family; what its table row needs."""
    import mlflow
    from mlflow.models import infer_signature

    train, validation, test = (data.splits[s] for s in ("train", "validation", "test"))
    name = registry.name(family)
    with mlflow.start_run(run_name=f"{family} {tags['voyce.partition']}", tags=tags) as run:
        started = time.perf_counter()
        params, trials = dict(fam.DEFAULTS[family]), 0
        if config.automl_trials > 0:
            params, best, trials = _search(family, data, config, placement)
            mlflow.log_metric("automl_best_validation_macro_f1", best)
        # Where it trains (device, single process or xgboost.spark): training/compute.py.
        placement = placement or place("cpu", [family])
        fitted = (compute or TrainingCompute()).fit(
            family, params, config.seed, train.X, train.y, placement, config.distributed_min_rows
        )
        model, how = fitted.model, fitted.how
        seconds = time.perf_counter() - started
        scores = {}
        for split_name, split in (("validation", validation), ("test", test)):
            predicted = model.predict(split.X)
            scores |= {
                f"{split_name}_{k}": v for k, v in metrics(split.y, predicted, data.labels).items()
            }
            _log_png(
                confusion_png(split.y, predicted, data.labels, f"{name} on {split_name}"),
                f"confusion_matrix_{split_name}.png",
            )
        scores |= {"training_seconds": round(seconds, 3), "train_rows": float(len(train.y))}
        mlflow.log_params({**params, "family": family, "automl_trials": trials, **how})
        # What the model learnt from: the window, the cap and each split's and label's rows.
        mlflow.log_params(sampling.mlflow_params(data.sampling))
        mlflow.log_dict(data.sampling, "training_data.json")
        mlflow.log_metrics(scores)
        importance = fam.importances(model, FEATURE_NAMES)
        mlflow.log_dict(importance, "feature_importance.json")
        top = dict(sorted(importance.items(), key=lambda kv: -kv[1])[:12])
        _log_png(
            bar_chart_png(
                {k: round(v, 3) for k, v in top.items()}, f"{name}: top features", "share"
            ),
            "feature_importance.png",
        )
        # The example is the split's mean, never one person's row (their text's embedding
        # is in it): an MLflow artifact is not erased with the tables.
        # In doubles: the models are fitted on float32 but served (and signed) as before.
        example = train.X.mean(axis=0, keepdims=True, dtype=np.float64)
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(example, model.predict_proba(example)),
            input_example=example,
            registered_model_name=name,
            pip_requirements=fam.requirements(family),
            # skops (MLflow's default) refuses object-dtype class arrays and the boosters'
            # own types unless each is listed as trusted; the registry is ours, and
            # cloudpickle is what Databricks model serving loads.
            serialization_format="cloudpickle",
            # Served through pyfunc, the model answers what its signature says: probabilities.
            pyfunc_predict_fn="predict_proba",
            metadata={"feature_names": list(FEATURE_NAMES), "labels": list(model.classes_)},
        )
    # Which feedback this version learned from: inference judges it only on later or
    # held-out feedback.
    registry.client().set_model_version_tag(
        name, str(info.registered_model_version), "voyce.trained_on", tags["voyce.partition"]
    )
    return {
        "family": family,
        "name": name,
        "version": str(info.registered_model_version),
        "run_id": run.info.run_id,
        "params": params,
        "scores": scores,
        "seconds": seconds,
        "trials": trials,
        "classes": [str(c) for c in model.classes_],
        "how": how,
    }


def _search(family: str, data: Data, config: TrainingConfig, placement: Placement | None):
    from voyce_assets.training.automl import search

    s = data.splits
    return search(
        family,
        (s["train"].X, s["train"].y),
        (s["validation"].X, s["validation"].y),
        data.labels,
        config.automl_trials,
        config.automl_timeout_seconds,
        config.seed,
        placement.device(family) if placement else "cpu",
    )


def set_aliases(registry: ModelRegistry, trained: dict[str, dict], choice) -> None:
    """Point champion and challenger at this run's versions; other families lose them."""
    from mlflow.exceptions import MlflowException

    client = registry.client()
    holders = {CHAMPION: choice.champion, CHALLENGER: choice.challenger}
    for alias, family in holders.items():
        for other, name in registry.names().items():
            if other == family:
                continue
            try:
                client.delete_registered_model_alias(name, alias)
            except MlflowException as exc:
                # The model or the alias does not exist: nothing to drop. Anything else
                # (no permission, the store unreachable) would leave two holders: raise.
                if exc.error_code not in NOT_FOUND:
                    raise
        if family is not None:
            client.set_registered_model_alias(
                trained[family]["name"], alias, trained[family]["version"]
            )
    for alias, family in holders.items():
        held = registry.by_alias(alias)  # raises if two models hold it
        expected = (trained[family]["name"], trained[family]["version"]) if family else None
        found = (held.name, str(held.version)) if held else None
        if found != expected:
            raise RuntimeError(f"alias {alias!r} is on {found} after moving it to {expected}")


def registry_rows(
    day: dt.date, trained: dict[str, dict], choice, current: bool, data: Data
) -> list[dict]:
    now = dt.datetime.now(dt.UTC)
    role = {choice.champion: CHAMPION, choice.challenger: CHALLENGER} if current else {}
    rows = []
    for family, t in trained.items():
        alias = role.get(family)
        rows.append(
            {
                "model_id": model_id(t["name"], t["version"]),
                "model_name": t["name"],
                "model_version": t["version"],
                "model_type": FAMILIES[family],
                "framework": fam.framework(family),
                "mlflow_run_id": t["run_id"],
                "mlflow_model_uri": f"models:/{t['name']}/{t['version']}",
                "metrics": json.dumps(t["scores"], sort_keys=True),
                "parameters": json.dumps(
                    {**t["params"], **_recorded(t)}, sort_keys=True, default=str
                ),
                "tags": json.dumps(
                    {
                        "alias": alias,
                        "automl_trials": t["trials"],
                        "classes": t["classes"],
                        "trained_on": day.isoformat(),
                        **t.get("how", {}),
                        "training_data": data.sampling,
                    },
                    sort_keys=True,
                ),
                "stage": STAGE_OF_ALIAS.get(alias, "None"),
                "training_seconds": round(t["seconds"], 3),
                "created_at": now,
                "updated_at": now,
                "event_date": day,
            }
        )
    return rows


def _recorded(trained: dict) -> dict:
    """How the model trained, as the row's parameters (the reasons go in its tags)."""
    how = trained.get("how", {})
    return {k: v for k, v in how.items() if k in ("device", "training_path", "num_workers")}


def archive_older(lakehouse: Lakehouse, dates: list[dt.date]) -> int:
    """Rows of earlier trainings that held an alias now held by this run's versions."""
    from deltalake import DeltaTable

    if not lakehouse.exists(REGISTRY):
        return 0
    inside = ", ".join(f"'{d.isoformat()}'" for d in dates)
    target = DeltaTable(
        lakehouse.table_uri(REGISTRY), storage_options=lakehouse.storage_options or None
    )
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    result = target.update(
        predicate=f"stage IN ('Production', 'Staging') AND event_date NOT IN ({inside})",
        updates={"stage": "'Archived'", "updated_at": f"TIMESTAMP '{now}'"},
    )
    return int(result.get("num_updated_rows", 0))


def newest_training(lakehouse: Lakehouse) -> dt.date | None:
    days = lakehouse.read(REGISTRY, None, ["event_date"]).column("event_date")
    return pc.max(days).as_py() if len(days) else None


def chance_check(tests: dict[dt.date, np.ndarray], choices: dict) -> AssetCheckResult:
    """Each day's champion beats guessing at the label frequencies on test by CHANCE_MARGIN
    (``tests``: each day's test labels)."""
    detail, failing = {}, []
    for day, (trained, choice, _current) in choices.items():
        score = trained[choice.champion]["scores"]["test_macro_f1"]
        chance = chance_macro_f1(tests[day])
        detail[day.isoformat()] = {
            "champion": choice.champion,
            "test_macro_f1": score,
            "chance": round(chance, 4),
            "test_rows": len(tests[day]),
        }
        if score < chance + CHANCE_MARGIN:
            failing.append(day.isoformat())
    described = [
        f"{day}: champion {d['champion']} test macro-F1 {d['test_macro_f1']:.3f} on "
        f"{d['test_rows']} test rows, under chance {d['chance']:.3f} + {CHANCE_MARGIN}"
        for day, d in detail.items()
        if day in failing
    ]
    return AssetCheckResult(
        check_name="champion_beats_chance",
        passed=not failing,
        severity=AssetCheckSeverity.ERROR,
        description="; ".join(described) if failing else "every champion beats chance",
        metadata={"failing_partitions": failing, "per_partition": MetadataValue.json(detail)},
    )


def skipped_partitions(
    lakehouse: Lakehouse, skipped: list[dt.date], config: TrainingConfig
) -> dict[str, dict]:
    """The metadata of the range's days that did not train: why, and the rows they keep."""
    if not skipped:
        return {}
    kept = pc.value_counts(lakehouse.read(REGISTRY, skipped, ["event_date"]).column("event_date"))
    rows = {v["values"].isoformat(): v["counts"] for v in kept.to_pylist()}
    why = f"not a training day (a range trains on {', '.join(config.train_on_weekdays)})"
    return {
        d.isoformat(): {
            "skipped": why,
            "dagster/partition_row_count": rows.get(d.isoformat(), 0),
        }
        for d in skipped
    }


def nothing_to_train(
    context: AssetExecutionContext,
    lakehouse: Lakehouse,
    dates: list[dt.date],
    config: TrainingConfig,
) -> MaterializeResult:
    """A range with no training day: nothing read, trained or written, and said so."""
    said = (
        f"no day of {dates[0]}..{dates[-1]} is a training day "
        f"({', '.join(config.train_on_weekdays)}): nothing trained, every day keeps its rows"
    )
    context.log.info(said)
    record_partitions(context, skipped_partitions(lakehouse, dates, config))
    return MaterializeResult(
        metadata={"trained_partitions": [], "skipped": said},
        check_results=[
            AssetCheckResult(
                check_name="champion_beats_chance",
                passed=True,
                severity=AssetCheckSeverity.ERROR,
                description=f"nothing to check: {said}",
                metadata={"failing_partitions": [], "trained_partitions": []},
            )
        ],
    )


@table_asset(
    REGISTRY.path,
    deps=[DATASET.path],
    kinds={"mlflow", "scikit-learn"},
    retry_policy=RetryPolicy(max_retries=1, delay=60),
    pool="gpu",
    # Bound to the Databricks step launcher in prod (a GPU job cluster), none locally.
    required_resource_keys={"gpu_step_launcher", "lakehouse", "mlflow", "training_compute"},
    tags={"voyce/cadence": "weekly"},
    checks={
        "champion_beats_chance": "The champion's test macro-F1 is at least "
        f"1/labels + {CHANCE_MARGIN} (better than guessing at the label frequencies)."
    },
    description="Logistic regression, random forest, XGBoost and LightGBM trained on the "
    "dataset up to the partition's day, tracked and registered in MLflow; aliases champion "
    "(best validation macro-F1, confirmed on test) and challenger.",
)
def model_registry(context: AssetExecutionContext, config: TrainingConfig) -> MaterializeResult:
    lakehouse: Lakehouse = context.resources.lakehouse
    registry: ModelRegistry = context.resources.mlflow
    unknown = sorted(set(config.families) - set(FAMILIES))
    if unknown or not config.families:
        raise Failure(
            description=f"families {unknown or '[]'} not known; choose from {', '.join(FAMILIES)}",
            allow_retries=False,
        )
    dates = partition_dates(context)
    # A backfill's runs hold up to 31 days each, and its last may hold one: a backfill
    # follows the cadence on every run, a run of one day asked for by itself always trains.
    days = training_days(
        dates, config.train_on_weekdays, backfill="dagster/backfill" in context.run.tags
    )
    require_upstream(context, [DATASET.path])
    # The devices, at once: device cuda without a GPU fails before any data is read.
    placement = place(config.device, config.families)
    context.log.info(f"training devices: {placement}")
    if not days:
        return nothing_to_train(context, lakehouse, dates, config)

    # Every day's survey first: a day short of data fails the run before any model is
    # registered. The vectors are read a day at a time, when it trains: a range holds one
    # day's sample, never one per day.
    def survey(day: dt.date) -> sampling.Plan:
        planned = sampling.plan(
            lakehouse,
            day,
            config.window_days,
            config.max_train_rows,
            config.seed,
            config.min_class_share,
        )
        require_enough(planned, config, day)
        return planned

    plans = {day: survey(day) for day in days}
    newest = newest_training(lakehouse)
    rows, per_partition, choices, tests = [], {}, {}, {}
    with registry.session():
        for n, day in enumerate(days):
            plan = plans.pop(day)
            if n:
                # Hours may have passed since the survey: a later day is planned again on
                # the dataset as it is now (a relabel, an erasure, a VACUUM of the old files).
                plan = survey(day)
            data = sampling.read(plan)
            tests[day] = data.splits["test"].y
            context.log.info(
                f"{day}: {data.used:,} of {data.rows:,} labelled rows of the window used "
                f"({data.sampling['strategy']})"
            )
            tags = {
                "voyce.partition": day.isoformat(),
                "voyce.dagster_run_id": context.run_id,
                "voyce.dataset_rows": str(data.rows),
            }
            trained = {}
            for family in config.families:
                trained[family] = train_family(
                    family,
                    data,
                    config,
                    registry,
                    tags,
                    context.resources.training_compute,
                    placement,
                )
                context.log.info(
                    f"{family}: {trained[family]['name']} v{trained[family]['version']} "
                    f"validation macro-F1 {trained[family]['scores']['validation_macro_f1']:.4f}"
                )
            choice = choose({f: t["scores"] for f, t in trained.items()}, config.confirm_tolerance)
            # Aliases move only with the newest training: a backfill of the past never
            # demotes a later champion.
            current = day == max(days) and (newest is None or day >= newest)
            day_rows = registry_rows(day, trained, choice, current, data)
            rows += day_rows
            choices[day] = (trained, choice, current)
            per_partition[day.isoformat()] = {
                "champion": f"{trained[choice.champion]['name']} v{trained[choice.champion]['version']}",
                "challenger": (
                    f"{trained[choice.challenger]['name']} v{trained[choice.challenger]['version']}"
                    if choice.challenger
                    else "none"
                ),
                "aliases_moved": current,
                "choice": choice.reason,
                "dataset_rows": data.rows,
                "rows_used": data.used,
                "training_data": MetadataValue.json(data.sampling),
                "label_sources": MetadataValue.json(data.sources),
                "training_seconds": round(sum(t["seconds"] for t in trained.values()), 3),
                "training": MetadataValue.json({f: t["how"] for f, t in trained.items()}),
                "models": markdown_table(
                    [
                        {
                            "model": f"{t['name']} v{t['version']}",
                            "val macro-F1": t["scores"]["validation_macro_f1"],
                            "test macro-F1": t["scores"]["test_macro_f1"],
                            "test accuracy": t["scores"]["test_accuracy"],
                            "seconds": round(t["seconds"], 2),
                        }
                        for t in trained.values()
                    ],
                    ["model", "val macro-F1", "test macro-F1", "test accuracy", "seconds"],
                ),
                "macro_f1_chart": png_markdown(
                    bar_chart_png(
                        {
                            f: round(t["scores"]["validation_macro_f1"], 3)
                            for f, t in trained.items()
                        },
                        f"validation macro-F1, {day}",
                        "macro-F1",
                    ),
                    "validation macro-F1",
                ),
            }
            del data  # the next day's sample is read without this one alongside
    # Only the days trained are replaced: the range's other days keep their rows.
    written = lakehouse.write_partitions(
        REGISTRY, pa.Table.from_pylist(rows, schema=REGISTRY.arrow_schema()), days
    )
    for key, meta in per_partition.items():
        meta["dagster/partition_row_count"] = written.rows_per_partition.get(key, 0)
    per_partition |= skipped_partitions(lakehouse, [d for d in dates if d not in days], config)
    trained, choice, current = choices[max(days)]
    if current:
        # A skipped day's older rows lose their stage too: the aliases left them.
        archived = archive_older(lakehouse, days)
        set_aliases(registry, trained, choice)
        context.log.info(
            f"champion {choice.champion}, challenger {choice.challenger}; {archived} older row(s) archived"
        )
    record_partitions(context, per_partition)
    return MaterializeResult(
        metadata={
            "experiment": registry.experiment,
            "features": f"{len(BASE_FEATURES)} + {EMBEDDING_DIM}-d embedding",
            "trained_partitions": [d.isoformat() for d in days],
        },
        check_results=[chance_check(tests, choices)],
    )
