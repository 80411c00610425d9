"""`humpback seed` on real Spark, Delta and MLflow: the embedded seed, OASST1 in both layouts, bad rows."""
import contextlib
import io
import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from humpback.stages import seed

SEED_FILE = Path(__file__).resolve().parents[2] / "data" / "sample" / "seed.jsonl"


def _reply(message_id, text, rank, lang="en", deleted=False):
    return {"message_id": message_id, "text": text, "role": "assistant", "lang": lang, "rank": rank,
            "deleted": deleted, "replies": []}


def _tree(message_id, text, replies, lang="en"):
    return {"message_tree_id": message_id, "prompt": {
        "message_id": message_id, "text": text, "role": "prompter", "lang": lang, "rank": None, "deleted": False,
        "replies": replies}}


# One usable tree (its rank-0 reply is chosen), one in Spanish, one whose only reply is deleted.
TREES = [
    _tree("p1", "What is a tuple?", [_reply("r1a", "A list.", 1), _reply("r1b", "An immutable sequence.", 0)]),
    _tree("p2", "¿Qué es una tupla?", [_reply("r2", "Una secuencia inmutable.", 0, lang="es")], lang="es"),
    _tree("p3", "What is a set?", [_reply("r3", "Deleted answer.", 0, deleted=True)]),
]


def _flat_messages():
    rows = []
    for tree in TREES:
        prompt = tree["prompt"]
        rows.append({**{k: v for k, v in prompt.items() if k != "replies"}, "parent_id": None})
        rows += [{**{k: v for k, v in reply.items() if k != "replies"}, "parent_id": prompt["message_id"]}
                 for reply in prompt["replies"]]
    return rows


@pytest.fixture(scope="module")
def stores(spark, tmp_path_factory):
    """One lakehouse and one MLflow store for the module; the default store is restored afterwards."""
    from humpback.lakehouse import Lakehouse
    from humpback.tracking import configure_mlflow

    root = tmp_path_factory.mktemp("seed-stage")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        configure_mlflow(uri)
        yield {"lakehouse": Lakehouse(spark, str(root / "lakehouse")), "mlflow_uri": uri, "root": root}


def run_seed(stores, *args, lakehouse=None):
    """seed.STAGE.main in this process (it reuses the session's Spark): (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    root = lakehouse or stores["lakehouse"].root
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = seed.STAGE.main([*args, "--lakehouse", root, "--mlflow-uri", stores["mlflow_uri"]])
    return code, out.getvalue(), err.getvalue()


def _rejects(lakehouse, source_prefix):
    rows = lakehouse.read("rejects").where(f"source LIKE '{source_prefix}%'").collect()
    return sorted((row["source"].removeprefix(source_prefix), row["reason"], row["stage"]) for row in rows)


def test_embedded_seed_loads_once_and_a_rerun_adds_nothing(stores):
    lakehouse = stores["lakehouse"]
    code, out, err = run_seed(stores, "--input", str(SEED_FILE), "--format", "jsonl")
    assert code == 0, err
    table = lakehouse.read("seed")
    assert table.columns == ["example_id", "instruction", "output", "source", "split", "source_file"]
    assert {row["source_file"] for row in table.select("source_file").distinct().collect()} == {str(SEED_FILE)}
    total = table.count()
    assert total >= 150 and f"{total} pairs loaded" in out and f"({total} new, 0 changed)" in out
    assert {row["split"] for row in table.select("split").distinct().collect()} == {"train", "dev"}
    version = lakehouse.version("seed")

    code, out, _ = run_seed(stores, "--input", str(SEED_FILE), "--format", "jsonl")
    assert code == 0 and "(0 new, 0 changed)" in out
    assert lakehouse.read("seed").count() == total and lakehouse.version("seed") == version

    import mlflow

    runs = mlflow.search_runs(experiment_names=["humpback"], filter_string=f"params.input = '{SEED_FILE}'")
    assert len(runs) == 2 and set(runs["metrics.rows"]) == {float(total)}
    assert sorted(runs["metrics.rows_new"]) == [0.0, float(total)]


def test_oasst1_trees_load_first_turn_pairs_and_reject_the_rest(stores, tmp_path):
    trees = tmp_path / "trees.jsonl"
    trees.write_text("".join(json.dumps(tree, ensure_ascii=False) + "\n" for tree in TREES))
    lakehouse_root = str(tmp_path / "lakehouse")
    code, out, err = run_seed(stores, "--input", str(trees), "--format", "oasst1", lakehouse=lakehouse_root)
    assert code == 0, err
    assert "1 pairs loaded" in out and "(1 new, 0 changed)" in out and "2 rejected" in out

    from humpback.lakehouse import Lakehouse

    lakehouse = Lakehouse(stores["lakehouse"].spark, lakehouse_root)
    rows = lakehouse.read("seed").collect()
    assert [(r["instruction"], r["output"], r["source"]) for r in rows] == [
        ("What is a tuple?", "An immutable sequence.", f"{trees}:r1b")]
    assert _rejects(lakehouse, f"{trees}:") == [("2", "not_english", "seed"), ("3", "deleted", "seed")]


@pytest.mark.parametrize("suffix", ["parquet", "jsonl"])
def test_oasst1_message_table_is_detected_and_selects_the_same_pair(tmp_path, suffix):
    path = tmp_path / f"messages.{suffix}"
    if suffix == "parquet":
        pq.write_table(pa.Table.from_pylist(_flat_messages()), path)
    else:
        path.write_text("".join(json.dumps(message, ensure_ascii=False) + "\n" for message in _flat_messages()))
    args = seed.STAGE.parser().parse_args(["--input", str(path), "--format", "oasst1"])
    rows, rejects = seed.parse_records(args, {})
    assert [(r["instruction"], r["output"], r["source"]) for r in rows] == [
        ("What is a tuple?", "An immutable sequence.", f"{path}:r1b")]
    assert sorted((r["source"].removeprefix(f"{path}:"), r["reason"]) for r in rejects) == [
        ("p2", "not_english"), ("p3", "deleted"), ("r1a", "not_rank0"), ("r2", "not_english"), ("r3", "deleted")]


def test_bad_rows_become_rejects_and_the_rest_loads(stores, tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"".join([
        b'{"q": "What is pip?", "a": "The package installer for Python."}\n',
        b'{"q": "No answer column"}\n',
        b'{"q": "", "a": "An answer without a question."}\n',
        b'{"q": "Broken \xff bytes", "a": "x"}\n',
        b"{not json\n",
        b'{"q": "Too long?", "a": "' + b"z" * 300 + b'"}\n',
        b'{"q": "What is venv?", "a": "Virtual environments."}\n',
    ]))
    lakehouse_root = str(tmp_path / "lakehouse")
    code, out, err = run_seed(stores, "--input", str(path), "--format", "jsonl", "--instruction-col", "q",
                              "--output-col", "a", "--set", "seed.max_chars=200", lakehouse=lakehouse_root)
    assert code == 0, err
    assert "2 pairs loaded" in out and "5 rejected" in out and "rejects by reason" in out

    from humpback.lakehouse import Lakehouse

    lakehouse = Lakehouse(stores["lakehouse"].spark, lakehouse_root)
    assert sorted(r["instruction"] for r in lakehouse.read("seed").collect()) == ["What is pip?", "What is venv?"]
    assert _rejects(lakehouse, f"{path}:") == [
        ("2", "missing_column", "seed"), ("3", "empty_instruction", "seed"), ("4", "broken_utf8", "seed"),
        ("5", "invalid_json", "seed"), ("6", "too_long", "seed")]


def test_user_errors_are_one_line(stores, tmp_path):
    code, out, err = run_seed(stores, "--input", str(tmp_path / "missing.jsonl"), "--format", "jsonl")
    assert code == 2 and out == ""
    assert err.strip() == f"humpback seed: error: --input {str(tmp_path / 'missing.jsonl')!r}: no such file"

    import mlflow

    runs_before = len(mlflow.search_runs(experiment_names=["humpback"], output_format="list"))
    code, _, err = run_seed(stores, "--input", str(SEED_FILE), "--format", "messages", "--output-col", "answer")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--format jsonl or parquet" in err
    # refused before its MLflow run opens: no failed run is left behind
    assert len(mlflow.search_runs(experiment_names=["humpback"], output_format="list")) == runs_before

    not_oasst = tmp_path / "plain.jsonl"
    not_oasst.write_text('{"instruction": "Q", "output": "A"}\n')
    code, _, err = run_seed(stores, "--input", str(not_oasst), "--format", "oasst1")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "'message_id'" in err


def _pairs_file(path, pairs):
    path.write_text("".join(json.dumps({"instruction": q, "output": a}) + "\n" for q, a in pairs))
    return path


def _table(lakehouse):
    return sorted((r["instruction"], r["source_file"]) for r in lakehouse.read("seed").collect())


FILE_A = [("What is pip?", "The installer."), ("What is a wheel?", "A built package."), ("What is venv?", "Envs.")]
FILE_B = [("What is a wheel?", "A built package."), ("What is uv?", "A fast installer.")]


def test_without_replace_a_second_file_merges_and_each_row_names_its_file(stores, tmp_path):
    from humpback.lakehouse import Lakehouse

    first, second = _pairs_file(tmp_path / "a.jsonl", FILE_A), _pairs_file(tmp_path / "b.jsonl", FILE_B)
    root = str(tmp_path / "lakehouse")
    lakehouse = Lakehouse(stores["lakehouse"].spark, root)
    assert run_seed(stores, "--input", str(first), "--format", "jsonl", lakehouse=root)[0] == 0
    code, out, err = run_seed(stores, "--input", str(second), "--format", "jsonl", lakehouse=root)
    assert code == 0, err
    # The pair both files hold now names the file loaded last; A's other pairs stay.
    assert _table(lakehouse) == [("What is a wheel?", str(second)), ("What is pip?", str(first)),
                                 ("What is uv?", str(second)), ("What is venv?", str(first))]
    assert "(1 new, 1 changed)" in out and "removed" not in out
    assert re.search(r"seed: seed@v1 holds 4 pairs \(.*\) from 2 file\(s\): ", out), out


def test_replace_makes_the_table_exactly_the_file_in_one_commit(stores, tmp_path):
    from humpback.lakehouse import Lakehouse

    first, second = _pairs_file(tmp_path / "a.jsonl", FILE_A), _pairs_file(tmp_path / "b.jsonl", FILE_B)
    root = str(tmp_path / "lakehouse")
    lakehouse = Lakehouse(stores["lakehouse"].spark, root)
    assert run_seed(stores, "--input", str(first), "--format", "jsonl", lakehouse=root)[0] == 0
    before = lakehouse.version("seed")
    code, out, err = run_seed(stores, "--input", str(second), "--format", "jsonl", "--replace", lakehouse=root)
    assert code == 0, err
    assert _table(lakehouse) == [("What is a wheel?", str(second)), ("What is uv?", str(second))]
    # one commit, an overwrite: readers never see a table that is half A and half B
    assert lakehouse.version("seed") == before + 1
    assert lakehouse.history("seed", 1)[0]["operationParameters"]["mode"] == "Overwrite"
    assert "(1 new, 1 changed, 2 removed)" in out and "replaced" in out
    assert "seed@v1 holds 2 pairs" in out
    # The earlier version still holds file A (time travel), for runs that logged it.
    assert lakehouse.read("seed", before).count() == 3

    # The same --replace again changes nothing and writes no version.
    code, out, _ = run_seed(stores, "--input", str(second), "--format", "jsonl", "--replace", lakehouse=root)
    assert code == 0 and "(0 new, 0 changed, 0 removed)" in out
    assert lakehouse.version("seed") == before + 1


def test_replace_with_a_file_of_no_usable_pairs_leaves_the_table_alone(stores, tmp_path):
    from humpback.lakehouse import Lakehouse

    root = str(tmp_path / "lakehouse")
    lakehouse = Lakehouse(stores["lakehouse"].spark, root)
    assert run_seed(stores, "--input", str(_pairs_file(tmp_path / "a.jsonl", FILE_A)), "--format", "jsonl",
                    lakehouse=root)[0] == 0
    wrong = tmp_path / "wrong-columns.jsonl"
    wrong.write_text('{"q": "What is pip?", "a": "The installer."}\n')
    code, out, err = run_seed(stores, "--input", str(wrong), "--format", "jsonl", "--replace", lakehouse=root)
    assert code == 2 and out == "" and "no usable pairs" in err and len(err.strip().splitlines()) == 1
    assert lakehouse.read("seed").count() == 3 and lakehouse.version("seed") == 0


@pytest.mark.parametrize("replace", [False, True])
def test_a_table_from_before_source_file_gains_the_column(stores, tmp_path, replace):
    from humpback.lakehouse import Lakehouse

    spark = stores["lakehouse"].spark
    root = str(tmp_path / "lakehouse")
    lakehouse = Lakehouse(spark, root)
    old = [("old-1", "What was easy_install?", "An older installer.", "old.jsonl:1", "train")]
    lakehouse.write(spark.createDataFrame(old, "example_id string, instruction string, output string, "
                                               "source string, split string"), "seed")
    path = _pairs_file(tmp_path / "b.jsonl", FILE_B)
    code, out, err = run_seed(stores, "--input", str(path), "--format", "jsonl",
                              *(["--replace"] if replace else []), lakehouse=root)
    assert code == 0, err
    assert "source_file" in lakehouse.read("seed").columns
    expected = [("What is a wheel?", str(path)), ("What is uv?", str(path))]
    # merged: the old row stays, its file unknown; replaced: only the new file's rows
    assert _table(lakehouse) == (expected if replace else [*expected, ("What was easy_install?", None)])
    if not replace:
        assert "from 2 file(s): " in out and "(not recorded) (1)" in out


@pytest.mark.parametrize("content", ['{"q": "What is pip?", "a": "The installer."}\n', "not json at all\n", ""])
def test_a_file_of_no_usable_pairs_fails_and_makes_no_table(stores, tmp_path, content):
    from humpback.lakehouse import Lakehouse

    root = str(tmp_path / "lakehouse")
    lakehouse = Lakehouse(stores["lakehouse"].spark, root)
    wrong = tmp_path / "wrong.jsonl"
    wrong.write_text(content)
    code, out, err = run_seed(stores, "--input", str(wrong), "--format", "jsonl", lakehouse=root)
    assert code == 2 and out == "", out + err
    assert err.count("\n") == 1 and err.startswith(f"humpback seed: error: {wrong} has no usable pairs ("), err
    assert "no `seed` table made" in err and "expected columns 'instruction' and 'output'" in err
    assert not lakehouse.exists("seed")
    if content:
        assert "see `rejects`" in err and lakehouse.read("rejects").where("stage = 'seed'").count() == 1
    else:
        assert "the file holds no records" in err
