"""The wheel stands alone: built from the project's sources and installed into a fresh virtual environment, it finds
conf/ and sql/ inside the package and runs a stage from a working directory outside the repository.

The fresh environment gets only the wheel (`--no-deps`); the project's .venv lends it the dependencies (pyspark,
delta-spark, mlflow, ...) through a .pth file, so nothing is downloaded and humpback itself comes from the wheel.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# What the build reads: the project's metadata, its packages and the resource folders the wheel ships.
BUILD_INPUTS = ("pyproject.toml", "setup.py", "README.md", "humpback", "pipelines", "conf", "sql")
MIN_SETUPTOOLS = 77  # pyproject.toml's build-system requirement
SEED_PAIRS = 5


def _build_tools_missing() -> str | None:
    """Why this interpreter cannot build the wheel without downloading anything, or None."""
    if importlib.util.find_spec("pip") is None:
        return f"pip is not installed in {sys.executable}"
    try:
        version = importlib.metadata.version("setuptools")
    except importlib.metadata.PackageNotFoundError:
        return f"setuptools is not installed in {sys.executable}"
    if int(version.split(".")[0]) < MIN_SETUPTOOLS:
        return f"setuptools {version} in {sys.executable} is older than the {MIN_SETUPTOOLS} the build needs"
    return None


def _run(command: list, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(part) for part in command], capture_output=True, text=True, **kwargs)


def test_in_the_checkout_the_resources_are_the_top_level_folders_users_edit():
    from humpback import resources
    from humpback.config import DEFAULTS_PATH
    from humpback.sqlfiles import SQL_DIR

    assert resources.source_checkout() == REPO
    assert DEFAULTS_PATH == REPO / "conf" / "defaults.toml"
    assert SQL_DIR == REPO / "sql"
    assert resources.conf_file("demo.toml") == REPO / "conf" / "demo.toml"
    with pytest.raises(ValueError, match="unknown resource folder"):
        resources.resource_dir("data")


def test_state_folders_follow_their_variable_else_the_checkout_else_the_working_directory(monkeypatch, tmp_path):
    from humpback import resources
    from humpback.models import models_dir

    monkeypatch.setenv("HUMPBACK_MODELS", str(tmp_path / "elsewhere"))
    assert models_dir() == tmp_path / "elsewhere"
    monkeypatch.delenv("HUMPBACK_MODELS")
    assert models_dir() == REPO / "models"
    monkeypatch.setattr(resources, "source_checkout", lambda: None)  # as from an installed wheel
    monkeypatch.chdir(tmp_path)
    assert models_dir() == tmp_path / "models"


def test_missing_jars_name_the_variable_that_points_at_them(monkeypatch, tmp_path):
    from humpback import spark

    monkeypatch.setattr(spark, "JARS_DIR", tmp_path / "jars")
    with pytest.raises(spark.SparkSetupError, match=f"not found in {tmp_path / 'jars'}: .*set HUMPBACK_JARS"):
        spark.delta_jars()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built from a copy of the sources (a build in the checkout would leave build/ behind, and a stale
    build/lib could slip deleted modules into the wheel), with this interpreter's setuptools and no index."""
    missing = _build_tools_missing()
    if missing:
        pytest.skip(f"the wheel cannot be built here: {missing}")
    source = tmp_path_factory.mktemp("source")
    for name in BUILD_INPUTS:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif path.exists():
            shutil.copy2(path, source / name)
    dist = tmp_path_factory.mktemp("dist")
    build = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                  "--no-cache-dir", "--disable-pip-version-check", "--quiet", "--wheel-dir", dist, source],
                 timeout=300)
    assert build.returncode == 0, f"building the wheel failed:\n{build.stdout[-3000:]}\n{build.stderr[-3000:]}"
    wheels = sorted(dist.glob("humpback-*.whl"))
    assert len(wheels) == 1, f"expected one wheel in {dist}, found {[w.name for w in dist.iterdir()]}"
    return wheels[0]


def test_the_wheel_ships_every_package_and_the_resources(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(archive.read(n).decode() for n in names if n.endswith(".dist-info/entry_points.txt"))
        packaged = {n: archive.read(n) for n in names if n.startswith(("humpback/conf/", "humpback/sql/"))}

    # Every module of every package, found by discovery: a new subpackage (humpback/stages/) needs no listing.
    modules = {path.relative_to(REPO).as_posix() for package in ("humpback", "pipelines")
               for path in (REPO / package).rglob("*.py")}
    assert modules, "no modules found in the checkout"
    assert sorted(modules - names) == []

    expected = {f"humpback/conf/{path.name}": path for path in (REPO / "conf").iterdir()
                if path.suffix == ".toml" or path.name == "log4j2.properties"}
    expected.update({f"humpback/sql/{path.name}": path for path in (REPO / "sql").glob("*.sql")})
    assert {"humpback/conf/defaults.toml", "humpback/conf/demo.toml", "humpback/conf/log4j2.properties",
            "humpback/sql/curated_pairs.sql", "humpback/sql/training_set.sql"} <= set(expected)
    assert sorted(packaged) == sorted(expected)  # and nothing else: not delta-jars/pom.xml, not the READMEs
    for name, path in expected.items():
        assert packaged[name] == path.read_bytes(), f"{name} differs from {path}"

    assert "humpback = humpback.cli:main" in entry_points


@pytest.mark.slow
def test_a_stage_runs_from_the_wheel_in_a_fresh_virtual_environment(wheel, tmp_path):
    from humpback.resources import state_dir

    venv = tmp_path / "venv"
    created = _run([sys.executable, "-m", "venv", "--without-pip", venv], timeout=120)
    assert created.returncode == 0, created.stderr
    python = venv / "bin" / "python"
    installed = _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
                      "--no-cache-dir", "--disable-pip-version-check", "--quiet", wheel], timeout=300)
    assert installed.returncode == 0, f"installing the wheel failed:\n{installed.stderr[-3000:]}"
    site = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], timeout=60)
    lent = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    # A plain path line: the dependencies become importable, but .venv's own .pth files (the editable install's
    # finder, which would bring back the checkout's humpback) are not run.
    Path(site.stdout.strip(), "_humpback_test_dependencies.pth").write_text("\n".join(lent) + "\n")

    work = tmp_path / "work"  # outside the repository: nothing may be read from the checkout
    work.mkdir()
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("PYTHONPATH", "PYSPARK_", "HUMPBACK_", "MLFLOW_")) and key != "SPARK_MASTER"}
    # Delta's jars are runtime state, not package data: lent by the checkout through the variable a cluster sets.
    env["HUMPBACK_JARS"] = str(state_dir("jars", "HUMPBACK_JARS").resolve())

    probe = _run([python, "-c", PROBE], cwd=work, env=env, timeout=120)
    assert probe.returncode == 0, probe.stderr[-3000:]
    found = json.loads(probe.stdout.strip().splitlines()[-1])
    for name, path in found.items():
        assert Path(path).is_relative_to(venv), f"{name} is read from {path}, not from the installed wheel"
        assert Path(path).is_file(), f"{name}: {path} does not exist"
    assert found["sql"].endswith("humpback/sql/curated_pairs.sql")

    with open(REPO / "data" / "sample" / "seed.jsonl", encoding="utf-8") as sample:
        (work / "seed.jsonl").write_text("".join(next(sample) for _ in range(SEED_PAIRS)), encoding="utf-8")
    stage = _run([venv / "bin" / "humpback", "seed", "--input", "seed.jsonl", "--format", "jsonl",
                  "--lakehouse", "lakehouse", "--set", 'spark.local_master="local[1]"',
                  "--set", "spark.shuffle_partitions=1", "--set", "spark.conf.spark.ui.enabled=false"],
                 cwd=work, env=env, timeout=300)
    assert stage.returncode == 0, f"humpback seed failed:\n{stage.stdout[-2000:]}\n{stage.stderr[-3000:]}"
    assert f"{SEED_PAIRS} pairs" in stage.stdout
    assert (work / "lakehouse" / "seed" / "_delta_log" / f"{0:020d}.json").is_file()
    assert (work / "mlflow.db").is_file()  # the default MLflow store: in the working directory


# Run in the fresh environment: where humpback and the resources it reads come from (printed as one JSON line).
PROBE = """
import json
import humpback, humpback.config, humpback.resources, humpback.spark, humpback.sqlfiles

config = humpback.config.load_config(humpback.resources.conf_file("demo.toml"))  # defaults.toml under demo.toml
assert config["seed"] and config["spark"], sorted(config)
print(json.dumps({
    "package": humpback.__file__,
    "defaults": str(humpback.config.DEFAULTS_PATH),
    "demo": str(humpback.resources.conf_file("demo.toml")),
    "log4j": str(humpback.spark.LOG4J_CONF),
    "sql": str(humpback.sqlfiles.load_sql("curated_pairs").path),
}))
"""
