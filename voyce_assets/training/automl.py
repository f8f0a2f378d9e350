"""The notebooks' optional AutoML step: a bounded Optuna search per model family.

Each trial is an MLflow child run of the family's run, scored by validation macro-F1; the
first trial is the family's defaults, so a search never returns worse than no search. The
budget is a number of trials and a wall-clock limit per family.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from voyce_assets.training.evaluation import metrics
from voyce_assets.training.families import DEFAULTS, fit, pipeline, suggest


def search(
    family: str,
    train: tuple[np.ndarray, np.ndarray],
    validation: tuple[np.ndarray, np.ndarray],
    labels: list[str],
    trials: int,
    timeout_seconds: float,
    seed: int,
    device: str = "cpu",
) -> tuple[dict[str, Any], float, int]:
    """The best parameters found, their validation macro-F1, and how many trials ran."""
    import mlflow
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial) -> float:
        params = suggest(family, trial)
        with mlflow.start_run(run_name=f"{family} trial {trial.number}", nested=True):
            model = fit(pipeline(family, params, seed, device), *train)
            score = metrics(validation[1], model.predict(validation[0]), labels)["macro_f1"]
            mlflow.log_params(params)
            mlflow.log_metric("validation_macro_f1", score)
            mlflow.set_tag("voyce.automl_trial", str(trial.number))
        return score

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.enqueue_trial({k: v for k, v in DEFAULTS[family].items() if k != "max_iter"})
    study.optimize(objective, n_trials=trials, timeout=timeout_seconds)
    best = study.best_trial
    params = suggest(family, optuna.trial.FixedTrial(best.params))
    return params, float(best.value), len(study.trials)
