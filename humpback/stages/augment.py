"""`humpback augment`: the backward model writes one instruction per kept segment -> `candidates`."""
from __future__ import annotations

import argparse
import json
from typing import Any

from humpback.ids import instruction_hash
from humpback.inference.base import Sampling
from humpback.stage import Context, Stage
from humpback.tables import TABLES

KEYS = TABLES["candidates"].keys
CANDIDATE_COLUMNS = TABLES["candidates"].columns


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, help="backward model (default: config augment.model, "
                                                      "models:/humpback-backward@myx)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N kept segments (by segment_id)")
    parser.add_argument("--engine", choices=("transformers", "vllm", "openai"), default=None,
                        help="inference engine (default: config inference.engine)")


def clean_instruction(text: str) -> str:
    """The model's reply as an instruction: trimmed, without wrapping quotes."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    return text


def augment_task(sampling: dict[str, Any], lineage: dict[str, str], flag_limits: dict[str, int]):
    """Segment (segment_id, text) -> candidate row, on a worker. Each row samples with its own seed, a hash of the
    run's seed and its segment_id, recorded in `seed` and in the `sampling` JSON."""
    from humpback.inference.base import LENGTH, Request
    from humpback.inference.seeding import row_seed
    from humpback.inference.task import InferenceTask
    from humpback.quality.instruction_flags import instruction_flags
    from humpback.training.sft import build_messages

    def format_input(row: dict) -> Request:
        return Request(messages=tuple(build_messages("", row["text"], "backward")[0]),
                       seed=row_seed(sampling["seed"], row["segment_id"]))

    def format_output(row: dict, generation) -> dict:
        seed = row_seed(sampling["seed"], row["segment_id"])
        instruction = None if generation.error else clean_instruction(generation.texts[0])
        return {
            "segment_id": row["segment_id"], "instruction": instruction,
            "instruction_hash": instruction_hash(instruction), **lineage,
            "sampling": json.dumps({**sampling, "run_seed": sampling["seed"], "seed": seed}, sort_keys=True),
            "seed": seed, "finish_reason": generation.finish_reason,
            "status": "error" if generation.error else "ok", "error": generation.error,
            "flags": instruction_flags(instruction, row["text"], **flag_limits,
                                       truncated=generation.finish_reason == LENGTH) if instruction is not None else [],
            "prompt_tokens": generation.prompt_tokens, "completion_tokens": generation.completion_tokens,
        }

    return InferenceTask(format_input, format_output, sampling=Sampling(**sampling))


def run(ctx: Context, args: argparse.Namespace) -> dict[str, float]:
    import mlflow
    from pyspark.sql import functions as F

    from humpback import reporting
    from humpback.inference.spark_adapter import InferencePlan, engine_spec, plan_settings, run_inference
    from humpback.models import resolve_model, stable_model_ref
    from humpback.prompts import BACKWARD_TEMPLATE_VERSION
    from humpback.quality.diversity import format_diversity, instruction_diversity

    settings = ctx.config["augment"]
    lakehouse = ctx.lakehouse
    model_uri = args.model or settings["model"]
    resolved = resolve_model(model_uri)
    backward_model = stable_model_ref(resolved)
    sampling = Sampling.from_settings(settings).to_dict()
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
                         handler=augment_task(sampling, lineage, flag_limits), **plan_settings(ctx.config))
    print(f"augment: backward model {model_uri} ({backward_model}), prompt {BACKWARD_TEMPLATE_VERSION}")
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
    return summary


STAGE = Stage("augment", "Write an instruction for every kept segment with the backward model.", run, options,
              reads=("segments",), writes=("candidates",), settings=("augment", "inference"),
              prompts=("backward",))
