"""Shared fixtures: one real local Spark session with Delta for the whole run, isolated stores per test."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# Tests never reach a model hub: everything they load ships with the project or is built by `make setup`.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

REPO_ROOT = Path(__file__).resolve().parent.parent
TEST_SPARK_SETTINGS = {
    "local_master": "local[2]",
    "shuffle_partitions": 2,
    "driver_memory": "2g",
    "conf": {"spark.ui.enabled": "false", "spark.sql.adaptive.coalescePartitions.initialPartitionNum": "2"},
}


@pytest.fixture(scope="session", autouse=True)
def isolated_stores(tmp_path_factory):
    """Default lakehouse and MLflow store in a temporary folder, never in the checkout."""
    root = tmp_path_factory.mktemp("stores")
    os.environ["HUMPBACK_LAKEHOUSE"] = str(root / "lakehouse")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
    os.environ.pop("SPARK_MASTER", None)
    yield root


@pytest.fixture(scope="session")
def spark(isolated_stores):
    from humpback.spark import get_spark

    session = get_spark(TEST_SPARK_SETTINGS, app_name="humpback-tests")
    yield session
    session.stop()


@pytest.fixture
def lakehouse(spark, tmp_path):
    from humpback.lakehouse import Lakehouse

    return Lakehouse(spark, str(tmp_path / "lakehouse"))


@pytest.fixture
def mlflow_store(tmp_path, monkeypatch):
    """A fresh SQLite-backed MLflow store for one test."""
    from humpback.tracking import configure_mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return configure_mlflow(uri)


@pytest.fixture(scope="session")
def embedded_model_dir():
    from humpback.models import models_dir

    folder = models_dir() / "smollm2-135m-instruct"
    if not (folder / "config.json").exists():
        pytest.fail("embedded model not converted: run `make setup` first")
    return folder


@pytest.fixture(scope="session")
def humpback_cli():
    """Run the CLI as a user would, in a fresh process: returns a CompletedProcess."""
    import subprocess

    def run(*args: str, env: dict | None = None, cwd: str | Path | None = None, timeout: int = 300):
        full_env = dict(os.environ)
        full_env.update(env or {})
        return subprocess.run([sys.executable, "-m", "humpback", *args], capture_output=True, text=True,
                              env=full_env, cwd=cwd or REPO_ROOT, timeout=timeout)

    return run
