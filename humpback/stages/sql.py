"""`humpback sql "QUERY"`: Spark SQL over the lakehouse, every table by its bare name."""
from __future__ import annotations

import argparse
import csv
import os
import sys
from typing import Iterable

from humpback.output import format_table, to_jsonable
from humpback.stage import Context, Stage, StageError, spark_error_summary


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("query", help='for example "SELECT drop_reason, count(*) FROM segments GROUP BY 1"')
    parser.add_argument("--format", choices=("table", "jsonl", "csv"), default="table",
                        help="table (default), jsonl (one JSON object per row, nothing else) or csv")
    parser.add_argument("--limit", type=int, default=None,
                        help="at most this many rows (default: 100 for table, all for jsonl and csv)")
    parser.add_argument("--allow-writes", action="store_true",
                        help="also run statements that change tables or the session (INSERT, UPDATE, DELETE, MERGE, "
                             "CREATE, DROP, ALTER, TRUNCATE, RESTORE, VACUUM, OPTIMIZE, CACHE, SET, ...) and read "
                             "files by path (parquet.`/path`, csv.`/path`, ...); without it a query is read-only")


# Statements that only read: allowed at the root of a plan without --allow-writes (Spark and Delta class names).
READ_ONLY_COMMANDS = frozenset({
    "ShowTables", "ShowTablesExtended", "ShowViews", "ShowFunctions", "ShowColumns", "ShowCreateTable",
    "ShowTableProperties", "ShowPartitions", "ShowNamespaces", "ShowNamespacesCommand", "ShowCatalogsCommand",
    "ShowCurrentNamespace", "ShowCurrentNamespaceCommand", "DescribeRelation", "DescribeColumn", "DescribeNamespace",
    "DescribeFunction", "DescribeQueryCommand", "DescribeDeltaHistory", "DescribeDeltaDetailCommand", "ExplainCommand",
})
# Table-valued functions that make rows from their arguments; any other one (read_files, ...) may read files.
ROW_FUNCTIONS = frozenset({
    "range", "explode", "explode_outer", "inline", "inline_outer", "json_tuple", "posexplode", "posexplode_outer",
    "stack", "collations", "sql_keywords", "variant_explode", "variant_explode_outer",
})
WRITE_HINT = "pass --allow-writes to run it"


def check_read_only(spark, query: str) -> None:
    """Refuse (StageError, one line) a statement that changes tables or the session, or that reads files by path.

    The decision is made on the plan Spark's own parser (with Delta's extensions) builds, so that a keyword in a
    comment or a string literal decides nothing; nothing is analyzed or run. A parse error is left to `spark.sql`,
    which reports it."""
    from py4j.protocol import Py4JJavaError

    jvm = spark.sparkContext._jvm
    state = spark._jsparkSession.sessionState()
    try:
        plan = state.sqlParser().parsePlan(query)
    except Py4JJavaError:
        return
    logical = jvm.java.lang.Class.forName("org.apache.spark.sql.catalyst.plans.logical.LogicalPlan")
    writes = [jvm.java.lang.Class.forName(f"org.apache.spark.sql.catalyst.plans.logical.{name}")
              for name in ("Command", "ParsedStatement")]
    root = _simple_name(plan)
    if root == "SetCommand" and (plan.kv().isEmpty() or plan.kv().get()._2().isEmpty()):
        return  # `SET` and `SET key` only show settings
    if root in READ_ONLY_COMMANDS:
        return _check_sources(jvm, state, plan, logical)
    stack = [plan]
    while stack:
        node = stack.pop()
        name = _simple_name(node)
        if any(kind.isInstance(node) for kind in writes) or name.endswith(("Statement", "Command")) \
                or name in ("Call", "UnresolvedExecuteImmediate", "CompoundBody"):
            statement = "this statement" if node is plan else f"a {name} inside it"
            raise StageError(f"read-only by default: {statement} ({name}) changes tables or the session; {WRITE_HINT}")
        _check_node_source(jvm, state, node, name)
        stack += _plans_under(node, logical)


def _check_sources(jvm, state, plan, logical) -> None:
    stack = [plan]
    while stack:
        node = stack.pop()
        _check_node_source(jvm, state, node, _simple_name(node))
        stack += _plans_under(node, logical)


def _check_node_source(jvm, state, node, name: str) -> None:
    """Refuse a relation read by path (format.`/path`, a path-based Delta table) or a table function that may read
    files."""
    if "PathBased" in name:
        raise StageError(f"read-only by default: reading a table by its path ({name}) needs --allow-writes")
    if name == "UnresolvedTableValuedFunction":
        function = ".".join(_seq(node.name())).lower()
        if function not in ROW_FUNCTIONS:
            raise StageError(f"read-only by default: table function {function}(...) may read files; {WRITE_HINT}")
    if name in ("UnresolvedRelation", "UnresolvedTableOrView", "UnresolvedTable", "UnresolvedView"):
        parts = list(_seq(node.multipartIdentifier()))
        if len(parts) == 2 and _is_data_source(jvm, state, parts[0]):
            raise StageError(f"read-only by default: {parts[0]}.`{parts[1]}` reads files by path; {WRITE_HINT}")
    if name == "PlanWithUnresolvedIdentifier":
        raise StageError("read-only by default: IDENTIFIER(...) cannot be checked before it runs; name the table "
                         f"directly, or {WRITE_HINT}")


def _is_data_source(jvm, state, name: str) -> bool:
    """Whether Spark reads `name.`path`` as a file of that format (parquet, csv, json, text, delta, ...)."""
    from py4j.protocol import Py4JJavaError

    try:
        jvm.org.apache.spark.sql.execution.datasources.DataSource.lookupDataSource(name, state.conf())
        return True
    except Py4JJavaError:
        return False


def _plans_under(node, logical) -> list:
    """The logical plans below a node: its children, CTE definitions and subqueries in its expressions."""
    found = list(_seq(node.children())) + list(_seq(node.innerChildren())) + list(_seq(node.subqueries()))
    return [plan for plan in found if logical.isInstance(plan)]


def _seq(seq) -> list:
    return [seq.apply(i) for i in range(seq.size())]


def _simple_name(node) -> str:
    return node.getClass().getSimpleName().rstrip("$")


def run(ctx: Context, args: argparse.Namespace) -> None:
    from pyspark.errors import AnalysisException

    if not args.allow_writes:
        check_read_only(ctx.spark, args.query)
    tables = ctx.lakehouse.register_tables()
    try:
        frame = ctx.spark.sql(args.query)
    except AnalysisException as err:
        message = spark_error_summary(err)
        if getattr(err, "getCondition", lambda: None)() == "TABLE_OR_VIEW_NOT_FOUND" or "TABLE_OR_VIEW_NOT_FOUND" in message:
            message += f" Tables in {ctx.lakehouse.root}: {', '.join(tables) or 'none yet'}."
        raise StageError(message) from None
    limit = args.limit if args.limit is not None else (100 if args.format == "table" else None)
    rows = frame.limit(limit + 1).collect() if limit is not None else frame.toLocalIterator()
    try:
        write_rows(frame.columns, rows, args.format, limit)
        sys.stdout.flush()
    except BrokenPipeError:  # `humpback sql ... | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def write_rows(columns: list[str], rows: Iterable, fmt: str, limit: int | None, out=None) -> None:
    out = out or sys.stdout
    if fmt == "jsonl":
        import json

        for count, row in enumerate(rows):
            if limit is not None and count >= limit:
                break
            out.write(json.dumps({c: to_jsonable(row[i]) for i, c in enumerate(columns)}, ensure_ascii=False) + "\n")
    elif fmt == "csv":
        writer = csv.writer(out)
        writer.writerow(columns)
        for count, row in enumerate(rows):
            if limit is not None and count >= limit:
                break
            writer.writerow([to_jsonable(value) for value in row])
    else:
        rows = list(rows)
        more = limit is not None and len(rows) > limit
        out.write(format_table(columns, [list(r) for r in rows[:limit]]) + "\n")
        if more:
            out.write(f"(first {limit} rows shown; use --limit N or --format jsonl for more)\n")


STAGE = Stage("sql", "Run Spark SQL against the lakehouse; tables are addressable by bare name.", run, options, tracked=False)
