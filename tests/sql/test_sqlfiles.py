"""Loading SQL files: their parameters and hashes (no Spark needed)."""
import hashlib

import pytest

from humpback.sqlfiles import SqlFile, check_parameters, load_sql


def test_parameters_ignore_comments_strings_and_casts(tmp_path):
    text = ("-- :not_me in a comment\nSELECT x::int, ':nor_me', '--', :real /* :hidden */\n"
            "FROM t WHERE y = :other AND z = :real")
    sql = SqlFile("q", tmp_path / "q.sql", text)
    assert sql.parameters == {"real", "other"}
    assert sql.sha256 == hashlib.sha256(text.encode()).hexdigest()


def test_the_shipped_files_declare_the_documented_parameters():
    assert load_sql("curated_pairs").parameters == {"iteration", "min_score", "scorer_model", "mode",
                                                    "backward_model", "include_constrained", "max_eval_overlap"}
    assert load_sql("training_set").parameters == {"set_name", "iteration", "seed_upsample", "seed_tag", "web_tag",
                                                   "scorer_model", "rating_mode", "backward_model",
                                                   "max_eval_overlap"}


def test_parameters_must_match_exactly(tmp_path):
    sql = SqlFile("q", tmp_path / "q.sql", "SELECT :a, :b")
    check_parameters(sql, {"a": 1, "b": None})
    with pytest.raises(ValueError, match="missing: b; not used: c"):
        check_parameters(sql, {"a": 1, "c": 2})
    with pytest.raises(FileNotFoundError, match="no SQL file"):
        load_sql("no_such_query")
