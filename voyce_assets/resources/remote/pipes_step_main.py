"""Runs one Dagster step on a Databricks cluster for the Pipes launcher
(``resources/pipes_launcher.py``); uploaded to a Unity Catalog volume and started as the
task's ``spark_python_task``.

``argv``: the pickled step run ref and the code zip, both volume paths, which a cluster
opens as files. Dagster Pipes brings the session (context and messages on the same volume,
params in the environment); every event of the step goes back as a Pipes custom message,
which the host replays into its own instance.
"""

import os
import pickle
import sys
import tempfile
import zipfile


def main(step_run_ref_path: str, code_zip_path: str) -> None:
    from dagster_pipes import (
        PipesEnvVarParamsLoader,
        PipesUnityCatalogVolumesContextLoader,
        PipesUnityCatalogVolumesMessageWriter,
        open_dagster_pipes,
    )

    # The step's resources resolve the token from the environment; on a cluster the SDK
    # authenticates by the runtime's own credentials when it is empty.
    os.environ.setdefault("DATABRICKS_TOKEN", "")
    with (
        open_dagster_pipes(
            context_loader=PipesUnityCatalogVolumesContextLoader(),
            message_writer=PipesUnityCatalogVolumesMessageWriter(),
            params_loader=PipesEnvVarParamsLoader(),
        ) as pipes,
        tempfile.TemporaryDirectory() as tmp,
    ):
        with zipfile.ZipFile(code_zip_path) as zf:
            zf.extractall(tmp)
        # First on the path: the step runs the code it was launched with, even where the
        # cluster also has an (older) wheel of the project installed.
        sys.path.insert(0, tmp)

        from dagster._core.execution.plan.external_step import (
            external_instance_from_step_run_ref,
            run_step_from_ref,
        )
        from dagster._serdes import serialize_value

        with open(step_run_ref_path, "rb") as handle:
            step_run_ref = pickle.load(handle)
        instance = external_instance_from_step_run_ref(
            step_run_ref,
            event_listener_fn=lambda event: pipes.report_custom_message(serialize_value(event)),
        )
        for _ in run_step_from_ref(step_run_ref, instance):
            pass


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
