"""The whole loop end to end at toy size (every stage for real, a handful of rows), then the notebook over it."""
import json
import os
from pathlib import Path

import pytest

from humpback.stages import demo, iterate, sql

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "tests" / "fixtures" / "tiny_demo.toml"


@pytest.fixture(scope="module")
def demo_run(spark, tmp_path_factory):
    from humpback.tracking import configure_mlflow

    root = tmp_path_factory.mktemp("demo")
    uri = configure_mlflow(f"sqlite:///{root / 'mlflow.db'}")
    common = ["--lakehouse", str(root / "lakehouse"), "--mlflow-uri", uri, "--config", str(TINY)]
    return root, common, demo.STAGE.main(common)


def test_the_demo_runs_every_stage_and_its_summary_reads_the_tables(spark, demo_run):
    from humpback.stage import Context

    root, common, code = demo_run
    assert code == 0
    ctx = Context(demo.STAGE.parser().parse_args(common))
    rows = dict(demo.summary_rows(ctx, 1))
    lakehouse = ctx.lakehouse
    segments = lakehouse.read("segments")
    assert rows["pages"] == lakehouse.read("pages").count() > 0
    assert rows["segments (kept / all)"] == f"{segments.where('drop_reason IS NULL').count()} / {segments.count()}"
    assert rows["candidates (instructions written)"] == lakehouse.read("candidates").where("status = 'ok'").count() == 4
    curated = lakehouse.read("training_sets").where("iteration = 1 AND source = 'augmented'").count()
    rated = lakehouse.read("ratings").where("iteration = 1 AND status = 'ok'").count()
    assert rows["iteration 1: curated pairs / rated"].startswith(f"{curated} / {rated}")
    evaluation = lakehouse.read("evaluations").first()
    assert rows["win rate of M1 over M0"].startswith(f"{100 * evaluation['win_rate']:.1f}% ± ")
    assert f"{evaluation['wins']}W/{evaluation['ties']}T/{evaluation['losses']}L" in rows["win rate of M1 over M0"]
    assert rows["answers cut by the token budget (M / M0)"].endswith("of 2 (conf/demo.toml's evaluate.max_new_tokens)")


def test_the_registry_holds_myx_m0_and_m1(demo_run):
    from humpback.tracking import model_version_by_alias

    assert model_version_by_alias("humpback-backward", "myx")
    assert model_version_by_alias("humpback-forward", "m0")
    m1 = model_version_by_alias("humpback-forward", "m1")
    assert m1.tags["dataset"].startswith("iter1")


def test_every_table_the_loop_writes_matches_the_registry(spark, demo_run):
    """The contract: each table's written columns and types are the registry's (humpback/tables.py)."""
    from humpback.tables import TABLES, schema_differences

    root, _, _ = demo_run
    written = sorted(path.name for path in (root / "lakehouse").iterdir() if (path / "_delta_log").is_dir())
    assert set(TABLES) - set(written) <= {"rejects", "rewrites"}  # no bad record in the toy corpus; no --rewrite
    assert set(written) <= set(TABLES)
    problems = [problem for name in written for problem in
                schema_differences(TABLES[name], spark.read.format("delta").load(str(root / "lakehouse" / name)).schema)]
    assert problems == []


def test_training_sets_and_evaluations_are_queryable(demo_run, capsys):
    _, common, _ = demo_run
    capsys.readouterr()
    assert sql.STAGE.main(["SELECT source, tag, count(*) AS n FROM training_sets GROUP BY 1, 2 ORDER BY 1",
                     "--format", "jsonl", *common]) == 0
    rows = {r["source"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert rows["seed"]["tag"] == "Answer in the style of an AI Assistant." and rows["seed"]["n"] == 179
    # A one-step backward model writes mostly flagged instructions: the set holds exactly the unflagged ones that
    # were rated (min_score 1.0 keeps every rated pair), each under the web tag.
    assert sql.STAGE.main(["SELECT count(*) AS n FROM candidates c JOIN ratings r USING (segment_id, instruction_hash) "
                     "WHERE c.status = 'ok' AND size(c.flags) = 0", "--format", "jsonl", *common]) == 0
    unflagged = json.loads(capsys.readouterr().out)["n"]
    assert rows.get("augmented", {"n": 0})["n"] == unflagged
    if unflagged:
        assert rows["augmented"]["tag"] == "Answer with knowledge from web search."
    assert sql.STAGE.main(["SELECT count(*) AS n FROM training_sets t JOIN candidates c ON t.instruction = c.instruction "
                     "WHERE t.source = 'augmented' AND size(c.flags) > 0", "--format", "jsonl", *common]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 0
    assert sql.STAGE.main(["SELECT model, baseline, n_prompts, win_rate FROM evaluations", "--format", "jsonl",
                     *common]) == 0
    [evaluation] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert evaluation["model"] == "models:/humpback-forward@m1" and evaluation["n_prompts"] == 2
    assert 0.0 <= evaluation["win_rate"] <= 1.0


def test_the_notebook_executes_against_the_run(demo_run):
    import nbformat
    from nbclient import NotebookClient

    root, _, _ = demo_run
    notebook = nbformat.read(REPO / "notebooks" / "explore.ipynb", as_version=4)
    previous = os.environ.get("HUMPBACK_LAKEHOUSE")
    os.environ["HUMPBACK_LAKEHOUSE"] = str(root / "lakehouse")  # the kernel inherits it
    try:
        NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(root)}}).execute()
    finally:
        if previous is None:
            os.environ.pop("HUMPBACK_LAKEHOUSE")
        else:
            os.environ["HUMPBACK_LAKEHOUSE"] = previous
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 4  # drop reasons, lengths, scores, win rate
    printed = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "iteration 1: threshold 1 (its training set)" in printed  # tiny_demo's min_score, not the default 4.5


@pytest.mark.parametrize("argv, expected", [([], 1), (["--set", "iterate.iterations=2"], 2),
                                            (["--iterations", "3", "--set", "iterate.iterations=2"], 3)])
def test_the_demo_takes_its_iterations_from_the_flag_else_the_settings(argv, expected):
    from humpback.config import load_config

    args = demo.STAGE.parser().parse_args(argv)
    config = load_config(str(REPO / "conf" / "demo.toml"), args.overrides)
    assert demo.demo_iterations(args, config) == expected
    assert iterate.STAGE.arguments(args, {"iterations": expected}).iterations == expected
