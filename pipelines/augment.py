"""`humpback augment`: the backward model writes one instruction per kept segment -> `candidates`."""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from typing import Any

from humpback.tables import TABLES
from pipelines.common import Context, StageError, run_stage, stage_parser

KEYS = TABLES["candidates"].keys
CANDIDATE_COLUMNS = TABLES["candidates"].columns


def build_parser() -> argparse.ArgumentParser:
    parser = stage_parser("augment", "Write an instruction for every kept segment with the backward model.")
    parser.add_argument("--model", default=None, help="backward model (default: config augment.model, "
                                                      "models:/humpback-backward@myx)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N kept segments (by segment_id)")
    parser.add_argument("--engine", choices=("transformers", "vllm", "openai"), default=None,
                        help="inference engine (default: config inference.engine)")
    return parser


def instruction_hash(instruction: str | None) -> str | None:
    """Joins ratings to the exact instruction they rated (equal to Spark's sha2(instruction, 256))."""
    return hashlib.sha256(instruction.encode("utf-8")).hexdigest() if instruction is not None else None


def clean_instruction(text: str) -> str:
    """The model's reply as an instruction: trimmed, without wrapping quotes."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    return text


def augment_handler(sampling: dict[str, Any], lineage: dict[str, str], flag_limits: dict[str, int]):
    """Rows (segment_id, text) -> candidate rows, on a worker. Each row samples with its own seed, a hash of the
    run's seed and its segment_id, recorded in `seed` and in the `sampling` JSON."""

    def handle(rows: list[dict], engine) -> list[dict]:
        from humpback.inference.base import LENGTH, Request, Sampling
        from humpback.inference.seeding import row_seed
        from humpback.quality.instruction_flags import instruction_flags
        from humpback.training.sft import build_messages

        seeds = [row_seed(sampling["seed"], row["segment_id"]) for row in rows]
        requests = [Request(messages=tuple(build_messages("", row["text"], "backward")[0]), seed=seed)
                    for row, seed in zip(rows, seeds)]
        generations = engine.generate(requests, Sampling(**sampling))
        out = []
        for row, seed, generation in zip(rows, seeds, generations):
            instruction = None if generation.error else clean_instruction(generation.texts[0])
            truncated = generation.finish_reason == LENGTH
            out.append({
                "segment_id": row["segment_id"], "instruction": instruction,
                "instruction_hash": instruction_hash(instruction), **lineage,
                "sampling": json.dumps({**sampling, "run_seed": sampling["seed"], "seed": seed}, sort_keys=True),
                "seed": seed, "finish_reason": generation.finish_reason,
                "status": "error" if generation.error else "ok", "error": generation.error,
                "flags": instruction_flags(instruction, row["text"], **flag_limits, truncated=truncated)
                if instruction is not None else [],
                "prompt_tokens": generation.prompt_tokens, "completion_tokens": generation.completion_tokens,
            })
        return out

    return handle


def run(ctx: Context, args: argparse.Namespace) -> int:
    from pyspark.sql import functions as F

    from humpback import reporting
    from humpback.inference.spark_adapter import InferencePlan, engine_spec, plan_settings, run_inference
    from humpback.models import resolve_model, stable_model_ref
    from humpback.prompts import BACKWARD_TEMPLATE_VERSION
    from humpback.quality.diversity import format_diversity, instruction_diversity
    from humpback.tracking import start_run

    settings = ctx.config["augment"]
    lakehouse = ctx.lakehouse
    if not lakehouse.exists("segments"):
        raise StageError(f"no `segments` table in {lakehouse.root}: run `humpback ingest` and `humpback segment` first")
    ctx.mlflow_uri  # noqa: B018 - model references may point at the registry
    model_uri = args.model or settings["model"]
    resolved = resolve_model(model_uri)
    backward_model = stable_model_ref(resolved)
    sampling = {"temperature": float(settings["temperature"]), "top_p": float(settings["top_p"]),
                "max_new_tokens": int(settings["max_new_tokens"]), "seed": int(settings["seed"]), "n": 1}
    lineage = {"backward_model": backward_model, "model_uri": model_uri, "model_version": resolved.version or "",
               "prompt_version": BACKWARD_TEMPLATE_VERSION}
    flag_limits = {"min_chars": int(settings["min_instruction_chars"]), "max_chars": int(settings["max_instruction_chars"])}

    kept = lakehouse.read("segments").where("drop_reason IS NULL").select("segment_id", "text")
    if args.limit is not None:
        kept = kept.orderBy("segment_id").limit(args.limit)
    todo = kept
    if lakehouse.exists("candidates"):
        done = lakehouse.read("candidates").where(
            (F.col("backward_model") == backward_model) & (F.col("prompt_version") == BACKWARD_TEMPLATE_VERSION)
            & (F.col("status") == "ok")).select("segment_id")
        todo = kept.join(done, "segment_id", "left_anti")  # finished keys are skipped; errors are retried
    todo = todo.withColumn("backward_model", F.lit(backward_model)).withColumn("prompt_version",
                                                                               F.lit(BACKWARD_TEMPLATE_VERSION))
    plan = InferencePlan(stage="augment", table="candidates", keys=KEYS, output_columns=CANDIDATE_COLUMNS,
                         spec=engine_spec(ctx.config, model_uri, args.engine),
                         handler=augment_handler(sampling, lineage, flag_limits), **plan_settings(ctx.config))
    print(f"augment: backward model {model_uri} ({backward_model}), prompt {BACKWARD_TEMPLATE_VERSION}")
    with start_run("augment", ctx.config, stage="augment") as _:
        import mlflow

        mlflow.log_params({"model_uri": model_uri, "backward_model": backward_model,
                           "prompt_version": BACKWARD_TEMPLATE_VERSION, "engine": plan.spec.kind,
                           **{f"sampling.{k}": v for k, v in sampling.items()}})
        stats = run_inference(lakehouse, todo, plan)
        candidates = lakehouse.read("candidates").where(F.col("backward_model") == backward_model)
        status_counts = {r["status"]: r["count"] for r in candidates.groupBy("status").count().collect()}
        flag_counts = {r["flag"]: r["count"] for r in
                       candidates.select(F.explode("flags").alias("flag")).groupBy("flag").count().collect()}
        flagged = candidates.where(F.size("flags") > 0).count()
        diversity = instruction_diversity(candidates.where(F.col("status") == "ok"))
        truncated = flag_counts.get("truncated", 0)
        summary = {"rows_this_run": stats.rows_done, "prompt_tokens": stats.prompt_tokens,
                   "completion_tokens": stats.completion_tokens, "tokens_per_second": stats.tokens_per_second,
                   "candidates": sum(status_counts.values()), "flagged": flagged, "truncated": truncated,
                   "truncated_share": truncated / diversity["rows"] if diversity["rows"] else 0.0,
                   "diversity.first_words_ratio": diversity["first_words_ratio"],
                   "diversity.distinct_ratio": diversity["distinct_ratio"]}
        mlflow.log_metrics({k: float(v) for k, v in summary.items()})
        reporting.log_counts("status", status_counts)
        reporting.log_counts("flag", flag_counts)
    print(f"augment: {stats.rows_done} instructions written this run ({stats.completion_tokens} tokens generated, "
          f"{stats.tokens_per_second:.0f} tokens/s); {summary['candidates']} candidates for this model, "
          f"{flagged} flagged")
    print(f"augment: {format_diversity(diversity)}")
    print(f"augment: {truncated} of {diversity['rows']} instructions ({100 * summary['truncated_share']:.1f}%) hit "
          f"the token budget (augment.max_new_tokens = {sampling['max_new_tokens']}) and are flagged `truncated`")
    print(reporting.format_counts("candidates by status", status_counts))
    if flag_counts:
        print(reporting.format_counts("flags (a candidate may have several)", flag_counts, total=summary["candidates"]))
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_stage(build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
