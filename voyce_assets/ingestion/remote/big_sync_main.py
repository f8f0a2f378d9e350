"""Runs one big full sync on a Databricks CPU job cluster for the prod ``big_sync``
(``ingestion/big_sync_databricks.py``); uploaded to a Unity Catalog volume and started as the
task's ``spark_python_task``.

``argv``: the code zip (a volume path). Dagster Pipes brings the sync's parameters (its
extras); the result goes back as one custom message.
"""

import os
import sys
import tempfile
import zipfile


def main(code_zip_path: str) -> None:
    from dagster_pipes import (
        PipesEnvVarParamsLoader,
        PipesUnityCatalogVolumesContextLoader,
        PipesUnityCatalogVolumesMessageWriter,
        open_dagster_pipes,
    )

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
        # First on the path: the sync runs the code it was launched with.
        sys.path.insert(0, tmp)

        from pyspark.sql import SparkSession

        from voyce_assets.ingestion.big_sync_databricks import (
            RESULT_MESSAGE,
            encode_result,
            prod_stores,
            run_remote,
        )

        app_db, lakehouse = prod_stores()
        result = run_remote(pipes.extras, app_db, lakehouse, SparkSession.builder.getOrCreate())
        pipes.report_custom_message({"kind": RESULT_MESSAGE, "result": encode_result(result)})


if __name__ == "__main__":
    main(sys.argv[1])
