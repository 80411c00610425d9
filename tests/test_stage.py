"""The one runner every stage goes through: prerequisites, one MLflow run, the summary, errors, typed calls."""
import argparse

import pytest

from humpback.stage import Context, Stage, StageError


def counting_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--mode", choices=("fast", "slow"), default="fast")


def counting_work(ctx: Context, args: argparse.Namespace) -> dict:
    if args.rows < 0:
        raise StageError("--rows must not be negative")
    return {"rows": args.rows, "slow": args.mode == "slow"}


COUNTING = Stage("counting", "Count rows (a stage for the tests).", counting_work, counting_options,
                 settings=("ingest",), run_name=lambda ctx, args: f"counting-{args.rows}")
NEEDS_SEGMENTS = Stage("needs", "Reads segments.", counting_work, counting_options, reads=("segments",))


def refuse_slow(ctx: Context, args: argparse.Namespace) -> None:
    if args.mode == "slow":
        raise StageError("--mode slow is refused here")


CHECKED = Stage("checked", "Counts rows, refusing slow mode before it starts.", counting_work, counting_options,
                check=refuse_slow)


@pytest.fixture
def context(spark, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = argparse.Namespace(lakehouse=str(tmp_path / "lakehouse"), mlflow_uri=uri, config=None, overrides=[],
                              verbose=False)
    return Context(args)


def test_a_stage_runs_in_one_mlflow_run_with_its_settings_and_summary(context, capsys):
    import mlflow

    summary = COUNTING.call(context, rows=7)
    assert summary == {"rows": 7, "slow": False}
    [run] = mlflow.search_runs(experiment_names=["humpback"], output_format="list")
    assert run.info.run_name == "counting-7" and run.info.status == "FINISHED"
    assert run.data.metrics == {"rows": 7.0, "slow": 0.0}
    assert run.data.params["settings.ingest.max_page_bytes"] == str(context.config["ingest"]["max_page_bytes"])
    out = capsys.readouterr().out
    assert "=== humpback counting --rows 7" in out and f"(MLflow run {run.info.run_id})" in out


def test_a_call_takes_the_stages_options_only(context):
    with pytest.raises(TypeError, match="stage counting has no option row; it has"):
        COUNTING.call(context, row=7)
    with pytest.raises(TypeError, match="stage counting needs rows"):
        COUNTING.call(context)
    with pytest.raises(TypeError, match=r"mode must be one of \['fast', 'slow'\], not 'quick'"):
        COUNTING.call(context, rows=1, mode="quick")


def test_a_user_error_in_a_called_stage_names_the_stage(context):
    with pytest.raises(StageError, match=r"^counting: --rows must not be negative$"):
        COUNTING.call(context, rows=-1)


def test_a_missing_table_stops_before_the_work_and_names_the_command_that_writes_it(context):
    with pytest.raises(StageError, match=r"no `segments` table in .*: run `humpback segment` first"):
        NEEDS_SEGMENTS.call(context, rows=1)


def test_the_command_line_maps_user_errors_to_one_line_and_exit_2(tmp_path, capsys):
    code = COUNTING.main(["--rows", "-1", "--lakehouse", str(tmp_path / "l"),
                          "--mlflow-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"])
    assert code == 2
    assert capsys.readouterr().err == "humpback counting: error: --rows must not be negative\n"


def test_a_stage_that_sends_a_prompt_links_its_registered_version_to_its_run(context):
    import mlflow

    from humpback.tracking import linked_prompts

    backward = Stage("writing", "Sends the backward prompt.", counting_work, counting_options, prompts=("backward",))
    backward.call(context, rows=1)
    [run] = mlflow.search_runs(experiment_names=["humpback"], output_format="list")
    assert [name for name, _ in linked_prompts(run.info.run_id)] == ["humpback-backward-prompt"]


def test_a_called_stage_checks_text_options_with_their_type(context):
    def limited(parser):
        counting_options(parser)
        parser.add_argument("--name", type=lambda text: text if text.isalnum() else int("x"))

    named = Stage("named", "Takes a name.", counting_work, limited)
    with pytest.raises(TypeError, match="stage named: name: invalid literal"):
        named.call(context, rows=1, name="a'; DROP")


def test_a_refused_input_stops_before_the_mlflow_run_opens(context, capsys):
    import mlflow

    with pytest.raises(StageError, match=r"^checked: --mode slow is refused here$"):
        CHECKED.call(context, rows=3, mode="slow")
    assert mlflow.search_runs(experiment_names=["humpback"], output_format="list") == []  # no FAILED run left
    assert "=== humpback checked --rows 3 --mode slow" in capsys.readouterr().out
    assert CHECKED.call(context, rows=3) == {"rows": 3, "slow": False}
    [run] = mlflow.search_runs(experiment_names=["humpback"], output_format="list")
    assert run.info.status == "FINISHED"
