import hashlib
import json
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from humpback.seeds import (
    example_id,
    parse_instruction_output,
    parse_messages,
    parse_oasst1_messages,
    parse_oasst1_trees,
    split_for,
)

SEED_FILE = Path(__file__).resolve().parent.parent / "data" / "sample" / "seed.jsonl"


def _message(message_id, text, role, lang="en", rank=None, deleted=False, replies=()):
    return {"message_id": message_id, "text": text, "role": role, "lang": lang, "rank": rank,
            "deleted": deleted, "replies": list(replies)}


# Five hand-written OASST1 trees, one per case of the paper's selection rule.
TREES = [
    {"message_tree_id": "t1", "prompt": _message("p1", "What is a list?", "prompter", replies=[
        _message("r1a", "A sequence.", "assistant", rank=1),
        _message("r1b", "A mutable sequence of items.", "assistant", rank=0, replies=[
            _message("f1", "And a tuple?", "prompter", replies=[
                _message("a1", "An immutable sequence.", "assistant", rank=0)])])])},
    {"message_tree_id": "t2", "prompt": _message("p2", "Deleted question", "prompter", deleted=True, replies=[
        _message("r2", "Answer to a deleted question.", "assistant", rank=0)])},
    {"message_tree_id": "t3", "prompt": _message("p3", "¿Qué es una lista?", "prompter", lang="es", replies=[
        _message("r3", "Una secuencia mutable.", "assistant", lang="es", rank=0)])},
    {"message_tree_id": "t4", "prompt": _message("p4", "What is a dict?", "prompter", replies=[
        _message("r4a", "Deleted best answer.", "assistant", rank=0, deleted=True),
        _message("r4b", "A mapping.", "assistant", rank=1)])},
    {"message_tree_id": "t5", "prompt": _message("p5", "Unanswered?", "prompter")},
]


def _flatten(message, parent_id, tree_id):
    row = {k: v for k, v in message.items() if k != "replies"}
    yield {**row, "parent_id": parent_id, "message_tree_id": tree_id}
    for reply in message["replies"]:
        yield from _flatten(reply, message["message_id"], tree_id)


def _flat_table():
    return [m for tree in TREES for m in _flatten(tree["prompt"], None, tree["message_tree_id"])]


def _lines(records):
    return [json.dumps(r, ensure_ascii=False).encode("utf-8") + b"\n" for r in records]


def _reasons(rejects):
    return Counter(r["reason"] for r in rejects)


def test_example_id_is_a_content_hash():
    expected = hashlib.sha256(b"Q\x00A").hexdigest()[:32]
    assert example_id("Q", "A") == expected
    assert example_id("Q", "A") != example_id("Q", "A.")


def test_split_is_deterministic_and_near_the_fraction():
    ids = [example_id(str(i), "x") for i in range(5_000)]
    splits = [split_for(i) for i in ids]
    assert splits == [split_for(i) for i in ids]
    assert 0.08 < splits.count("dev") / len(ids) < 0.12
    assert {split_for(i, dev_fraction=0.0) for i in ids} == {"train"}
    with pytest.raises(ValueError):
        split_for(ids[0], dev_fraction=1.0)


def test_oasst1_trees_select_first_turn_english_rank0_undeleted():
    rows, rejects = parse_oasst1_trees(_lines(TREES), "trees.jsonl")
    assert [(r["instruction"], r["output"]) for r in rows] == [("What is a list?", "A mutable sequence of items.")]
    row = rows[0]
    assert row["example_id"] == example_id(row["instruction"], row["output"])
    assert row["source"] == "trees.jsonl:r1b" and row["split"] in {"train", "dev"}
    assert [(r["source"], r["reason"]) for r in rejects] == [
        ("trees.jsonl:2", "deleted"),
        ("trees.jsonl:3", "not_english"),
        ("trees.jsonl:4", "not_rank0"),  # the furthest a reply got: r4a is deleted, r4b ranked 1
        ("trees.jsonl:5", "no_reply"),
    ]
    assert all(r["stage"] == "seed" for r in rejects)


def test_oasst1_messages_select_the_same_pair_and_reject_every_other_message():
    rows, rejects = parse_oasst1_messages(_flat_table(), "messages.parquet")
    trees_rows, _ = parse_oasst1_trees(_lines(TREES), "trees.jsonl")
    assert [r["example_id"] for r in rows] == [r["example_id"] for r in trees_rows]
    by_message = {r["source"].split(":")[1]: r["reason"] for r in rejects}
    assert by_message == {
        "r1a": "not_rank0", "f1": "not_first_turn", "a1": "not_first_turn",
        "p2": "deleted", "r2": "deleted",
        "p3": "not_english", "r3": "not_english",
        "p4": "not_rank0", "r4a": "deleted", "r4b": "not_rank0",
        "p5": "no_reply",
    }
    assert len(rows) + len(rejects) == len(_flat_table()) - 1  # p1 and r1b make the one row


def test_oasst1_messages_missing_columns_and_orphans():
    table = _flat_table()
    no_role = {k: v for k, v in table[0].items() if k != "role"}
    orphan = {**table[1], "message_id": "x", "parent_id": "gone"}
    _, rejects = parse_oasst1_messages([no_role, orphan], "m")
    assert [(r["source"], r["reason"]) for r in rejects] == [("m:1", "missing_column"), ("m:x", "orphan")]
    assert "'role'" in rejects[0]["detail"]


def test_jsonl_records_load_and_bad_lines_become_rejects():
    lines = [
        b'{"instruction": "What is Python?", "output": "A programming language.", "license": "PSF-2.0"}\n',
        b'{"instruction": "No output column"}\n',
        b'{"instruction": "  ", "output": "empty instruction"}\n',
        b'{"instruction": "Empty output", "output": ""}\n',
        b'{"instruction": "Broken \xff\xfe bytes", "output": "x"}\n',
        b"\n",
        b'{"instruction": "Too long", "output": "' + b"y" * 100 + b'"}\n',
        b"not json\n",
        b'{"instruction": "What is Python?", "output": "A programming language."}\n',
        b'{"instruction": "Number", "output": 42}\n',
        '{"instruction": "Replaced \ufffd char", "output": "x"}'.encode(),
        b'{"instruction": " Is this kept? ", "output": "Yes.\\n", "source": "faq:page#anchor"}\n',
    ]
    rows, rejects = parse_instruction_output(lines, "seed.jsonl", max_chars=80)
    assert [(r["instruction"], r["output"], r["source"]) for r in rows] == [
        ("What is Python?", "A programming language.", "seed.jsonl:1"),
        ("Is this kept?", "Yes.", "faq:page#anchor"),
    ]
    assert [(r["source"], r["reason"]) for r in rejects] == [
        ("seed.jsonl:2", "missing_column"),
        ("seed.jsonl:3", "empty_instruction"),
        ("seed.jsonl:4", "empty_output"),
        ("seed.jsonl:5", "broken_utf8"),
        ("seed.jsonl:7", "too_long"),
        ("seed.jsonl:8", "invalid_json"),
        ("seed.jsonl:9", "duplicate"),
        ("seed.jsonl:10", "not_text"),
        ("seed.jsonl:11", "broken_utf8"),
    ]


def test_parquet_records_with_configured_columns(tmp_path):
    path = tmp_path / "seed.parquet"
    table = pa.table({"prompt": ["Q1", "Q2", None], "response": ["A1", "", "A3"]})
    pq.write_table(table, path)
    records = pq.read_table(path).to_pylist()
    rows, rejects = parse_instruction_output(records, "seed.parquet", "prompt", "response")
    assert [(r["instruction"], r["output"]) for r in rows] == [("Q1", "A1")]
    assert _reasons(rejects) == {"empty_output": 1, "empty_instruction": 1}
    _, rejects = parse_instruction_output(records, "seed.parquet")
    assert _reasons(rejects) == {"missing_column": 3}
    assert rejects[0]["detail"] == "no column 'instruction', 'output'"


def test_chat_records_take_the_first_user_turn_and_the_reply_after_it():
    records = [
        {"messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "What is pip?"},
            {"role": "assistant", "content": "The package installer."},
            {"role": "user", "content": "And venv?"},
            {"role": "assistant", "content": "Virtual environments."},
        ]},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "Parts?"}]},
                      {"role": "assistant", "content": [{"type": "text", "text": "Joined."}]}]},
        {"messages": [{"role": "user", "content": "Unanswered"}]},
        {"messages": [{"role": "assistant", "content": "No question"}]},
        {"conversation": []},
    ]
    rows, rejects = parse_messages(records, "chat.jsonl")
    assert [(r["instruction"], r["output"]) for r in rows] == [
        ("What is pip?", "The package installer."), ("Parts?", "Joined.")]
    assert [r["reason"] for r in rejects] == ["no_assistant_reply", "no_user_turn", "missing_column"]


def test_chat_records_from_raw_lines():
    lines = _lines([{"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]}])
    rows, rejects = parse_messages(lines + [b'{"messages": "\xc3"}'], "chat.jsonl")
    assert len(rows) == 1 and [r["reason"] for r in rejects] == ["broken_utf8"]


def test_embedded_seed_loads_without_rejects():
    with SEED_FILE.open("rb") as lines:
        rows, rejects = parse_instruction_output(lines, "data/sample/seed.jsonl")
    assert rejects == []
    assert len(rows) >= 150
    assert all(r["source"].startswith("python-3.11-faq:") for r in rows)
    assert {r["split"] for r in rows} == {"train", "dev"}
