"""The table registry: every Delta table of the lakehouse once, with its columns, Spark types and keys.

Stages take their Spark DDL and Arrow schemas from here (`ddl`, `arrow_schema`), tests build fixtures from it, and a
contract test checks every table a run writes against it. Types are Spark SQL type strings (`long`, not `bigint`).
"""
from __future__ import annotations

from dataclasses import dataclass

# Signals computed once per segment and kept as the `signals` struct; decisions read them later.
SIGNAL_TYPES = {
    "header_level": "int", "n_chars": "int", "n_words": "int", "header_chars": "int", "header_cap_ratio": "double",
    "header_all_caps": "boolean", "header_is_nav": "boolean", "repetition": "double", "mean_word_length": "double",
    "alpha_word_frac": "double", "stop_word_count": "int", "stop_word_frac": "double",
    "symbol_to_word_ratio": "double", "n_lines": "int", "mean_line_length": "double", "bullet_line_frac": "double",
    "ellipsis_line_frac": "double", "duplicate_line_frac": "double", "n_emails": "int", "n_phones": "int",
    "lang": "string", "lang_score": "double", "lang_share": "double", "foreign_paragraphs": "int",
}


# pages.content_type of a text corpus's document (its text is in `html`, the page's body): segmented at Markdown headers.
TEXT_CONTENT_TYPE = "text/markdown"


@dataclass(frozen=True)
class Table:
    name: str
    columns: dict[str, str]  # name -> Spark type, in the order the table is written
    keys: tuple[str, ...]  # what makes a row unique: the MERGE key of resumable writes
    description: str
    written_by: str  # the command that writes it: "run `humpback <written_by>` first"

    def ddl(self) -> str:
        return ddl(self.columns)

    def arrow_schema(self):
        return arrow_schema(self.columns)


def struct(fields: dict[str, str]) -> str:
    return "struct<" + ",".join(f"{name}:{kind}" for name, kind in fields.items()) + ">"


TABLES = {table.name: table for table in (
    Table("pages", {
        "page_id": "string", "url": "string", "warc_file": "string", "warc_record_id": "string", "http_status": "int",
        "content_type": "string", "html": "string", "n_bytes": "long", "encoding": "string",
        "encoding_source": "string",
    }, ("page_id",), "2xx HTML responses of the corpus (`ingest`)", "ingest --input GLOB"),
    Table("rejects", {
        "reject_id": "string", "source": "string", "stage": "string", "reason": "string", "detail": "string",
        "recorded_at": "timestamp",
    }, ("reject_id",), "every input record or row a stage could not use, with a named reason", "ingest"),
    Table("segments", {
        "segment_id": "string", "page_id": "string", "url": "string", "position": "int", "header": "string",
        "header_level": "int", "text": "string", "n_chars": "int", "lang": "string", "signals": struct(SIGNAL_TYPES),
        "drop_reason": "string", "text_hash": "string",
    }, ("segment_id",), "header-delimited segments with their signals; drop_reason NULL = kept (`segment`)", "segment"),
    Table("seed", {
        "example_id": "string", "instruction": "string", "output": "string", "source": "string", "split": "string",
        "source_file": "string",
    }, ("example_id",), "the seed (instruction, output) pairs, train and dev splits (`seed`)", "seed --input PATH --format jsonl"),
    Table("candidates", {
        "segment_id": "string", "instruction": "string", "instruction_hash": "string", "backward_model": "string",
        "model_uri": "string", "model_version": "string", "prompt_version": "string", "sampling": "string",
        "seed": "long", "finish_reason": "string", "status": "string", "error": "string", "flags": "array<string>",
        "prompt_tokens": "long", "completion_tokens": "long",
    }, ("segment_id", "backward_model", "prompt_version"), "an instruction per kept segment (`augment`)", "augment"),
    Table("ratings", {
        "segment_id": "string", "iteration": "int", "scorer_model": "string", "mode": "string", "score": "double",
        "score_probs": "map<string,double>", "rationale": "string", "parse_status": "string",
        "raw_parse_status": "string", "score_source": "string", "n_samples": "int", "instruction_hash": "string",
        "backward_model": "string", "scorer_uri": "string", "prompt_version": "string", "status": "string",
        "error": "string", "prompt_tokens": "long", "completion_tokens": "long", "seed": "long", "sampling": "string",
    # A rating is of one instruction for one segment: after the backward model is retrained and augment rerun, a
    # segment's new instruction is a new pair to rate.
    }, ("segment_id", "instruction_hash", "iteration", "scorer_model", "mode"), "a score per pair (`curate`)", "curate --iteration K"),
    Table("training_sets", {
        "set_name": "string", "iteration": "int", "example_key": "string", "instruction": "string",
        "output": "string", "source": "string", "tag": "string", "scorer_model": "string", "rating_mode": "string",
        "backward_model": "string",
    }, ("set_name", "example_key"), "versioned training sets: seed plus curated pairs (`trainset`)", "trainset --name NAME --iteration K"),
    Table("evaluations", {
        "evaluation_id": "string", "model": "string", "baseline": "string", "judge": "string",
        "model_pinned": "string", "baseline_pinned": "string", "judge_pinned": "string", "n_prompts": "int",
        "wins": "int", "ties": "int", "losses": "int", "unparsed": "int", "win_rate": "double", "stderr": "double",
        "iteration": "int", "prompts": "string", "prompts_sha256": "string", "engine": "string",
        "judge_engine": "string", "evaluated_at": "timestamp", "mlflow_run_id": "string", "model_truncated": "int",
        "baseline_truncated": "int",
        # Length control (humpback.evaluation.length_control): mean answer lengths in characters, and the win rate
        # a logistic model of the verdicts on the length difference predicts at equal lengths (AlpacaEval 2's LC).
        "model_mean_length": "double", "baseline_mean_length": "double", "lc_win_rate": "double",
        "lc_length_coef": "double",
    }, ("evaluation_id",), "pairwise win rates of a model against a baseline (`evaluate`)", "evaluate"),
    Table("scorer_checks", {
        "check_id": "string", "pair_id": "string", "kind": "string", "label": "int", "instruction_id": "string",
        "output_id": "string", "instruction": "string", "output": "string", "source": "string", "score": "double",
        "score_probs": "map<string,double>", "score_source": "string", "parse_status": "string", "status": "string",
        "error": "string", "scorer_model": "string", "scorer_uri": "string", "mode": "string", "set_seed": "long",
        "rating_seed": "long", "prompt_version": "string", "prompt_tokens": "long", "completion_tokens": "long",
        "checked_at": "timestamp",
    # A check is one scorer (pinned), one mode and one labelled set (its pairs and the seed that built it): check_id
    # is their content id, so a rerun of the same check resumes it and another scorer never overwrites it.
    }, ("check_id", "pair_id"), "a scorer's score for each labelled pair (`scorer-check`)",
        "scorer-check --scorer URI"),
    Table("rewrites", {
        "segment_id": "string", "instruction_hash": "string", "rewriter_model": "string", "prompt_version": "string",
        "instruction": "string", "output": "string", "model_uri": "string", "model_version": "string",
        "sampling": "string", "seed": "long", "finish_reason": "string", "status": "string", "error": "string",
        "flags": "array<string>", "content_overlap": "double", "copied_share": "double", "prompt_tokens": "long",
        "completion_tokens": "long",
    # A curated pair's web text rewritten as the answer to its instruction, by one rewriter under one prompt version
    # (humpback.quality.rewrite_flags names what went wrong: content_overlap and copied_share are its measures).
    }, ("segment_id", "instruction_hash", "rewriter_model", "prompt_version"),
        "curated pairs' web texts rewritten as answers to their instructions (`rewrite`)", "rewrite --iteration K"),
)}


def ddl(columns: dict[str, str]) -> str:
    """Spark DDL for {name: type}."""
    return ", ".join(f"{name} {kind}" for name, kind in columns.items())


_ARROW_TYPES = {"string": "string", "int": "int32", "long": "int64", "double": "float64", "boolean": "bool_"}


def arrow_schema(columns: dict[str, str]):
    """The Arrow schema matching {name: Spark type} (string, int, long, double, boolean, timestamp, array<>,
    map<>, struct<>)."""
    import pyarrow as pa

    def arrow_type(kind: str):
        kind = kind.strip()
        if kind.startswith("array<") and kind.endswith(">"):
            return pa.list_(arrow_type(kind[6:-1]))
        if kind.startswith("map<") and kind.endswith(">"):
            key, value = top_level_split(kind[4:-1])
            return pa.map_(arrow_type(key), arrow_type(value))
        if kind.startswith("struct<") and kind.endswith(">"):
            fields = [field.split(":", 1) for field in top_level_split(kind[7:-1])]
            return pa.struct([(name.strip(), arrow_type(field_kind)) for name, field_kind in fields])
        if kind == "timestamp":
            return pa.timestamp("us", tz="UTC")
        return getattr(pa, _ARROW_TYPES[kind])()

    return pa.schema([(name, arrow_type(kind)) for name, kind in columns.items()])


def top_level_split(text: str) -> list[str]:
    """`a, map<b,c>` -> ['a', 'map<b,c>']: commas inside <...> belong to the inner type."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += {"<": 1, ">": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    return parts + [text[start:].strip()]


def record_batch(rows: list[dict], schema):
    """Rows (dicts; missing keys are nulls) as one Arrow batch, for mapInArrow."""
    import pyarrow as pa

    return pa.RecordBatch.from_pylist(rows, schema=schema)


def table_frame(spark, name: str, rows: list[dict]):
    """Rows that name some of a table's columns as a DataFrame with the table's whole registry schema (the other
    columns NULL): test fixtures and hand-made inputs shaped exactly like what the stages write."""
    table = TABLES[name]
    unknown = sorted({column for row in rows for column in row} - set(table.columns))
    if unknown:
        raise ValueError(f"{name} has no column(s) {', '.join(unknown)}")
    return spark.createDataFrame([tuple(row.get(column) for column in table.columns) for row in rows], table.ddl())


def spark_type_string(data_type) -> str:
    """A Spark DataType as the registry writes it: simpleString with `long` for `bigint`."""
    return data_type.simpleString().replace("bigint", "long")


def schema_differences(table: Table, schema) -> list[str]:
    """How a written table's Spark schema differs from the registry: missing columns, other types, extra columns.
    Empty when they agree."""
    written = {field.name: spark_type_string(field.dataType) for field in schema.fields}
    problems = [f"{table.name}.{name}: missing (registry: {kind})" for name, kind in table.columns.items()
                if name not in written]
    problems += [f"{table.name}.{name}: {written[name]}, registry says {kind}" for name, kind in table.columns.items()
                 if name in written and written[name] != kind]
    problems += [f"{table.name}.{name}: not in the registry" for name in written if name not in table.columns]
    return problems
