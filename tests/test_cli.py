"""The `humpback` command: stages listed, global options passed on to the stage."""
from pathlib import Path

import pytest

from humpback import cli

DESIGN_STAGES = ["ingest", "segment", "seed", "train", "augment", "curate", "trainset", "evaluate", "iterate",
                 "demo", "sql", "scorer-check", "rewrite"]


def test_help_lists_every_stage_of_the_design(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for stage in DESIGN_STAGES:
        assert f"\n  {stage} " in out


def test_every_stage_has_its_own_help(capsys):
    for stage in DESIGN_STAGES:
        with pytest.raises(SystemExit) as exit_:
            cli.main([stage, "--help"])
        assert exit_.value.code == 0
        assert f"usage: humpback {stage}" in capsys.readouterr().out


def test_global_options_before_the_stage_reach_the_stage():
    args = cli.build_parser().parse_args(["--lakehouse", "/tmp/lh", "--set", "a.b=1", "sql", "SELECT 1"])
    assert cli.global_argv(args) == ["--lakehouse", "/tmp/lh", "--set", "a.b=1"]
    assert args.stage_args == ["SELECT 1"]


def test_unknown_stage_is_refused(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["bogus"])
    assert exit_.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


# The JVM itself prints this when Spark's launcher enables the Vector API (a separate point of the quiet output).
JVM_LAUNCH_WARNING = "WARNING: Using incubator modules:"


@pytest.mark.parametrize("stage", ["augment", "curate", "evaluate", "sql"])
@pytest.mark.parametrize("value", ["0", "-3"])
def test_limit_must_be_positive(stage, value, capsys):
    """`--limit 0` would silently do nothing: argparse refuses it in one line, before any work."""
    with pytest.raises(SystemExit) as exit_:
        cli.main([stage, "--limit", value, "--iteration", "1", "--model", "m", "SELECT 1"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"humpback {stage}: error: argument --limit:"), err
    assert "positive" in err



@pytest.mark.parametrize("setting, message", [
    ("segment.min_char=5000", "--set segment.min_char: unknown setting; did you mean segment.min_chars?"),
    ("segment.min_chars=abc", "--set segment.min_chars: expected an integer, got 'abc'"),
])
def test_a_bad_setting_stops_the_stage_before_spark_starts(setting, message, tmp_path, monkeypatch, capsys):
    import humpback.spark

    def no_spark(*args, **kwargs):
        raise AssertionError("Spark was started")

    monkeypatch.setattr(humpback.spark, "get_spark", no_spark)
    code = cli.main(["segment", "--set", setting, "--lakehouse", str(tmp_path / "lakehouse")])
    err = capsys.readouterr().err
    assert code == 2
    assert err == f"humpback segment: error: {message}\n"


def test_an_unquoted_glob_the_shell_expanded_gets_a_hint(tmp_path, capsys):
    files = [tmp_path / f"{name}.warc.gz" for name in "abc"]
    for path in files:
        path.touch()
    with pytest.raises(SystemExit) as exit_:
        cli.main(["ingest", "--input", *map(str, files)])  # what `--input DIR/*.warc.gz` unquoted becomes
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1
    assert err.startswith(f"humpback ingest: error: unrecognized arguments: {files[1]} {files[2]}; ")
    assert f"quote it (--input '{tmp_path}/*.warc.gz') or repeat --input" in err


def test_unrecognized_arguments_that_are_not_files_get_no_glob_hint(capsys):
    with pytest.raises(SystemExit):
        cli.main(["ingest", "--input", "a.warc.gz", "--inptu", "b.warc.gz"])
    err = capsys.readouterr().err
    assert "unrecognized arguments: --inptu b.warc.gz" in err and "glob" not in err

def _children(pid: int) -> list[int]:
    from pathlib import Path

    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _running_a_spark_task(pid: int) -> bool:
    """Whether a JVM below the driver process has an executor thread running a task (Linux: thread names)."""
    from pathlib import Path

    for child in _children(pid):
        for comm in Path(f"/proc/{child}/task").glob("*/comm"):
            try:
                if comm.read_text().startswith("Executor task"):
                    return True
            except OSError:
                continue
    return False


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="finds the running Spark task through /proc")
def test_ctrl_c_prints_one_line_and_exits_130(tmp_path):
    """Ctrl-C in a terminal signals the whole foreground process group, while the driver waits in a JVM call."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.conftest import REPO_ROOT

    query = "SELECT count(*) FROM range(0, 1000000000000000, 1, 2)"  # runs for hours inside one collect()
    process = subprocess.Popen([sys.executable, "-m", "humpback", "sql", query, "--lakehouse", str(tmp_path / "lh")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO_ROOT, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while not _running_a_spark_task(process.pid):
            assert process.poll() is None and time.monotonic() < deadline, "the query never started"
            time.sleep(0.5)
        time.sleep(1)
        os.killpg(process.pid, signal.SIGINT)
        out, err = process.communicate(timeout=90)
        err, code = err.decode(), process.returncode
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith(JVM_LAUNCH_WARNING)]
    assert code == 130, err[-3000:]
    assert lines == ["humpback sql: interrupted"], err[-3000:]
    assert out == b""
