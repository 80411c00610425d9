"""`humpback evaluate` end to end on the embedded model, and its one-line errors."""
import contextlib
import io
import json
import re
from pathlib import Path

import pytest

from humpback.stages import evaluate

EMBEDDED = "embedded:smollm2-135m-instruct"


@pytest.fixture(scope="module")
def evaluation(spark, tmp_path_factory, embedded_model_dir):
    """One evaluation: 3 prompts, short answers, the embedded model as model, baseline and judge; (its lakehouse,
    what it printed)."""
    from humpback.lakehouse import Lakehouse
    from humpback.tracking import configure_mlflow

    root = tmp_path_factory.mktemp("evaluate")
    lakehouse = Lakehouse(spark, str(root / "lakehouse"))
    argv = ["--model", EMBEDDED, "--baseline", EMBEDDED, "--judge", EMBEDDED, "--limit", "3", "--iteration", "1",
            "--engine", "transformers", "--set", "evaluate.max_new_tokens=24",
            "--set", "evaluate.judge_max_new_tokens=24", "--benchmarks", "--lakehouse", lakehouse.root,
            "--mlflow-uri", configure_mlflow(f"sqlite:///{root / 'mlflow.db'}")]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert evaluate.STAGE.main(argv) == 0
    return lakehouse, out.getvalue()


@pytest.fixture(scope="module")
def evaluated(evaluation):
    return evaluation[0]


def test_evaluate_writes_a_row_to_evaluations(evaluated):
    (row,) = evaluated.read("evaluations").collect()
    assert (row.model, row.baseline, row.judge, row.iteration, row.n_prompts) == (EMBEDDED, EMBEDDED, EMBEDDED, 1, 3)
    assert row.wins + row.ties + row.losses == 3 and 0 <= row.win_rate <= 1
    assert row.win_rate == pytest.approx((row.wins + 0.5 * row.ties) / 3)
    assert row.evaluated_at is not None and row.mlflow_run_id and len(row.evaluation_id) == 32


def test_evaluate_logs_metrics_and_alpaca_eval_files_to_mlflow(evaluated):
    import mlflow

    from humpback.evaluation.alpaca import read_outputs

    (row,) = evaluated.read("evaluations").collect()
    run = mlflow.get_run(row.mlflow_run_id)
    assert run.data.metrics["win_rate"] == pytest.approx(row.win_rate)
    assert {"stderr", "wins", "ties", "losses", "unparsed"} <= set(run.data.metrics)
    folder = mlflow.artifacts.download_artifacts(run_id=row.mlflow_run_id, artifact_path="evaluation")
    outputs = read_outputs(f"{folder}/model_outputs.json")
    assert len(outputs) == 3 and {o.generator for o in outputs} == {EMBEDDED}
    judgments = [json.loads(line) for line in Path(folder, "judgments.jsonl").read_text().splitlines()]
    assert [j["outcome"] for j in judgments].count("win") == row.wins
    # each answer says whether the 24-token budget cut it; the row counts the cut ones
    for role, truncated in (("model", row.model_truncated), ("baseline", row.baseline_truncated)):
        records = json.loads(Path(folder, f"{role}_outputs.json").read_text())
        assert {record["finish_reason"] for record in records} <= {"stop", "length"}
        assert sum(record["finish_reason"] == "length" for record in records) == truncated
    assert run.data.metrics["model_truncated"] == row.model_truncated


def test_evaluations_store_mean_lengths_and_a_length_controlled_win_rate(evaluation):
    import mlflow

    from humpback.evaluation.length_control import length_controlled_win_rate

    evaluated, out = evaluation
    (row,) = evaluated.read("evaluations").collect()
    folder = mlflow.artifacts.download_artifacts(run_id=row.mlflow_run_id, artifact_path="evaluation")
    judgments = [json.loads(line) for line in Path(folder, "judgments.jsonl").read_text().splitlines()]
    # refitted from the stored judgments: the outcomes and both answers' lengths in characters
    expected = length_controlled_win_rate([j["outcome"] for j in judgments],
                                          [len(j["model_output"]) for j in judgments],
                                          [len(j["baseline_output"]) for j in judgments])
    assert row.lc_win_rate == pytest.approx(expected.lc_win_rate) and 0.0 <= row.lc_win_rate <= 1.0
    assert row.lc_length_coef == pytest.approx(expected.length_coef)
    assert row.model_mean_length == pytest.approx(expected.mean_model_length) and row.model_mean_length > 0
    assert row.baseline_mean_length == pytest.approx(expected.mean_baseline_length) and row.baseline_mean_length > 0
    metrics = mlflow.get_run(row.mlflow_run_id).data.metrics
    assert metrics["lc_win_rate"] == pytest.approx(row.lc_win_rate)
    assert metrics["model_mean_length"] == pytest.approx(row.model_mean_length)
    assert f"length-controlled win rate {100 * row.lc_win_rate:.1f}%" in out
    # the per-iteration plot (raw and length-controlled) is logged beside the files
    assert Path(folder, "win_rate_per_iteration.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_answers_and_judgments_print_progress_with_an_eta(evaluation):
    for what in ("model answers): 3/3 prompts", "baseline answers): 3/3 prompts", "judge): 3/3 pairs"):
        assert re.search(rf"^evaluate \({re.escape(what)} \(100%\), \d+ tokens/s \(\d+ generated/s\), "
                         r"[\d.]+ \w+/s, ETA 0s$", evaluation[1], re.M), what


class CountingEcho:
    """A stand-in engine: echoes each request, one prompt token and two generated ones per request."""

    def generate(self, requests, sampling):
        from humpback.inference.base import Generation

        return [Generation(texts=[r.messages[-1]["content"]], prompt_tokens=1, completion_tokens=2) for r in requests]


def test_work_runs_in_whole_batches_with_a_line_after_each(capsys):
    from humpback.inference.base import Request, Sampling

    def echo(chunk, engine):
        return [g.texts[0] for g in engine.generate([Request(({"role": "user", "content": t},)) for t in chunk],
                                                    Sampling())]

    texts = [str(n) for n in range(10)]
    assert evaluate.in_chunks(CountingEcho(), texts, echo, 4, "evaluate (test)", "prompts") == texts
    out = capsys.readouterr().out
    assert re.findall(r"^evaluate \(test\): (\d+/10) prompts \(", out, re.M) == ["4/10", "8/10", "10/10"]
    counter = evaluate.TokenCounter(CountingEcho())
    counter.generate([Request(({"role": "user", "content": "hi"},))] * 3, Sampling())
    assert counter.take() == (3, 6) and counter.take() == (0, 0)
    assert [evaluate.chunk_size(n, 8) for n in (3, 12, 80, 81, 805)] == [8, 8, 8, 16, 88]


def evaluate_runs() -> list:
    import mlflow

    return mlflow.search_runs(experiment_names=["humpback"], filter_string="attributes.run_name = 'evaluate'",
                              output_format="list")


def test_benchmarks_without_their_data_are_one_line_each_and_the_evaluation_stands(evaluation):
    lakehouse, printed = evaluation
    lines = printed.splitlines()
    benchmark_lines = [line for line in lines if line.startswith("benchmarks: ")]
    ifeval_lines = [line for line in lines if line.startswith("ifeval: ")]
    assert len(benchmark_lines) == 1 and "skipping" in benchmark_lines[0]
    assert len(ifeval_lines) == 1 and ifeval_lines[0].endswith("; skipping")
    assert lakehouse.read("evaluations").count() == 1


def test_a_negative_benchmark_limit_is_refused_in_one_line(tmp_path, mlflow_store, capsys):
    code = evaluate.STAGE.main(["--model", EMBEDDED, "--benchmarks", "--set", "evaluate.benchmark_limit=-1",
                                "--lakehouse", str(tmp_path / "l"), "--mlflow-uri", mlflow_store])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert err.endswith("error: evaluate.benchmark_limit must be 0 (all) or more")
    assert evaluate_runs() == []


def test_answers_are_seeded_per_prompt():
    from humpback.inference.seeding import row_seed

    first, second = evaluate.answer_request("What is rain?", 3), evaluate.answer_request("What is snow?", 3)
    assert first.seed == row_seed(3, "What is rain?") and first.seed != second.seed
    assert evaluate.answer_request("What is rain?", 3).seed == first.seed


def test_a_prompt_file_in_the_wrong_format_names_the_expected_fields(tmp_path, capsys):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"question": "What is rain?"}) + "\n")
    assert evaluate.STAGE.main(["--model", EMBEDDED, "--prompts", str(prompts), "--lakehouse", str(tmp_path / "l")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "line 1: no 'instruction' text; expected a JSON list or JSONL of objects with an 'instruction' field" in err


def test_a_missing_alias_names_the_aliases_that_exist(tmp_path, mlflow_store, capsys):
    from humpback.tracking import register_model_dir, start_run

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    with start_run("register", {}):
        register_model_dir(folder, "humpback-forward", "m0")
    code = evaluate.STAGE.main(["--model", "models:/humpback-forward@m7", "--lakehouse", str(tmp_path / "l"),
                          "--mlflow-uri", mlflow_store])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "has no alias 'm7'" in err and "@m0 (v1)" in err
    assert evaluate_runs() == []  # refused before the run opened
