"""run_inference's error budget, on real Spark and Delta: one error on most of a chunk stops the job (after the chunk
is written), while bad rows, each failing its own way or a minority, never do.

The handlers are our own code standing in for a stage's; the engine is the OpenAI-compatible client, which costs
nothing to build and is never called (the handlers do not use it).
"""
from __future__ import annotations

import pytest

COLUMNS = {"row_id": "string", "status": "string", "error": "string", "prompt_tokens": "long",
           "completion_tokens": "long"}
WORDS = ("alpha bravo charlie delta echo foxtrot golf hotel india juliett kilo lima mike november oscar papa "
         "quebec romeo sierra tango uniform victor whiskey xray yankee zulu").split()


def failing_handler(message_of):
    """A handler whose row fails with message_of(row) (a str) or succeeds (None). Built here so Spark pickles
    the closure by value (the test module is not importable on the workers)."""

    def handle(rows, engine):
        out = []
        for row in rows:
            message = message_of(row)
            out.append({"row_id": row["row_id"], "status": "error" if message else "ok", "error": message,
                        "prompt_tokens": 3, "completion_tokens": 0 if message else 2})
        return out

    return handle


def plan(handler, **options):
    from humpback.inference.base import EngineSpec
    from humpback.inference.spark_adapter import InferencePlan

    spec = EngineSpec("openai", "never-called", (("base_url", "http://127.0.0.1:9/v1"),))
    return InferencePlan(stage="budget-test", table="outputs", keys=("row_id",), output_columns=COLUMNS, spec=spec,
                         handler=handler, **{"partitions": 2, **options})


def todo(spark, n):
    rows = [(f"row-{i:03d}", WORDS[i % len(WORDS)] + "-" + WORDS[(i // len(WORDS)) % len(WORDS)]) for i in range(n)]
    return spark.createDataFrame(rows, "row_id string, word string")


def test_the_same_error_on_every_row_stops_after_the_first_chunk_which_is_kept(spark, lakehouse):
    from humpback.inference.spark_adapter import ErrorBudgetExceeded, run_inference

    # the row's own numbers in the message (a count, an address) do not make the errors different
    handler = failing_handler(lambda row: f"RuntimeError: CUDA error at 0x7f{row['row_id'][-3:]} on row "
                                          f"{row['row_id'][-3:]}\nTraceback line {row['row_id']}")
    lines = []
    with pytest.raises(ErrorBudgetExceeded) as caught:
        run_inference(lakehouse, todo(spark, 40), plan(handler, chunk_rows=20), log=lines.append)

    error = caught.value
    message = str(error)
    assert "\n" not in message and message.startswith("budget-test: stopped: ")
    assert f"{error.failed} of {error.chunk_rows} rows (100%) of chunk 1/2" in message
    assert "max_error_share = 0.5" in message and "RuntimeError: CUDA error at 0x7f" in message
    assert "Traceback" not in message and "kept in `outputs`" in message and "rerun retries" in message
    assert error.failed == error.chunk_rows >= 8 and error.example.startswith("RuntimeError: CUDA error at 0x7f")
    assert error.stats.rows_done == error.chunk_rows and error.stats.status_counts == {"error": error.chunk_rows}
    # the chunk that tripped the budget was written first, its errors queryable; the second chunk never ran
    stored = lakehouse.read("outputs").collect()
    assert len(stored) == error.chunk_rows < 40
    assert {row.status for row in stored} == {"error"}
    assert all(row.error.startswith("RuntimeError: CUDA error") for row in stored)
    assert any(line.startswith(f"budget-test: {error.chunk_rows}/40 rows") for line in lines)


def test_rows_failing_each_their_own_way_are_bad_data_and_the_job_completes(spark, lakehouse):
    from humpback.inference.spark_adapter import run_inference

    handler = failing_handler(lambda row: f"ValueError: cannot read {row['word']!r}")
    stats = run_inference(lakehouse, todo(spark, 40), plan(handler, chunk_rows=20), log=lambda line: None)

    assert stats.rows_done == 40 and stats.status_counts == {"error": 40}
    assert lakehouse.read("outputs").where("status = 'error'").count() == 40


def test_one_error_on_a_minority_of_rows_or_on_a_few_rows_does_not_stop_the_job(spark, lakehouse):
    from humpback.inference.spark_adapter import run_inference

    # a third of the rows fail the same way: under the default share of one half
    third = failing_handler(lambda row: "KeyError: 'text'" if int(row["row_id"][-3:]) % 3 == 0 else None)
    stats = run_inference(lakehouse, todo(spark, 30), plan(third, chunk_rows=30), log=lambda line: None)
    assert stats.rows_done == 30 and stats.status_counts == {"error": 10, "ok": 20}

    # every row fails the same way, but 5 rows are under the minimum of 8: no evidence of a bug
    every = failing_handler(lambda row: "KeyError: 'text'")
    small = spark.createDataFrame([(f"small-{i}", "x") for i in range(5)], "row_id string, word string")
    stats = run_inference(lakehouse, small, plan(every), log=lambda line: None)
    assert stats.status_counts == {"error": 5}


def test_the_budget_follows_its_settings(spark, lakehouse):
    from humpback.inference.spark_adapter import ErrorBudgetExceeded, plan_settings, run_inference

    third = failing_handler(lambda row: "KeyError: 'text'" if int(row["row_id"][-3:]) % 3 == 0 else None)
    settings = plan_settings({"inference": {"max_error_share": 0.25, "error_budget_min_rows": 4}})
    assert settings["max_error_share"] == 0.25 and settings["error_budget_min_rows"] == 4
    with pytest.raises(ErrorBudgetExceeded, match=r"10 of 30 rows \(33%\) of chunk 1/1 .* KeyError: 'text'"):
        run_inference(lakehouse, todo(spark, 30), plan(third, **{**settings, "chunk_rows": 30}), log=lambda line: None)

    every = failing_handler(lambda row: "KeyError: 'text'")
    off = plan_settings({"inference": {"max_error_share": 1}})
    stats = run_inference(lakehouse, todo(spark, 30), plan(every, **{**off, "chunk_rows": 30}), log=lambda line: None)
    assert stats.status_counts == {"error": 30}

    for bad in ({"max_error_share": 1.5}, {"max_error_share": -0.1}, {"error_budget_min_rows": 0}):
        with pytest.raises(ValueError, match="inference\\."):
            plan_settings({"inference": bad})


def test_the_error_signature_masks_numbers_and_keeps_words(spark):
    from pyspark.sql import functions as F

    from humpback.inference.spark_adapter import error_signature

    errors = ["OutOfMemoryError: Tried to allocate 2.00 GiB (0x7ffe12ab)\nmore lines",
              "OutOfMemoryError: Tried to allocate 16.50 GiB   (0xdead)",
              "ValueError: cannot read 'alpha'", "ValueError: cannot read 'bravo'", None]
    df = spark.createDataFrame([(e,) for e in errors], "error string")
    signatures = [row.s for row in df.select(error_signature(F.col("error")).alias("s")).collect()]
    assert signatures[0] == signatures[1] == "OutOfMemoryError: Tried to allocate #.# GiB (#)"
    assert signatures[2] != signatures[3]
    assert signatures[4] == "(no message)"
