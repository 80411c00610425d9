"""`humpback rewrite`: an aligned model rewrites each curated pair's web text as the answer to its instruction ->
`rewrites`.

"Better Alignment with Instruction Back-and-Forth Translation" (Nguyen et al. 2024) keeps backtranslation and
curation, then has an aligned model rewrite each kept web text as an answer to its instruction, keeping its
facts; `humpback trainset --output-source rewritten` then trains on the rewrites instead of the web texts.

The pairs of iteration K are the curated pairs a training set of iteration K holds: the `augmented` rows of
`training_sets` (its latest version) with `iteration = K`, of every set built for K or only of `--name NAME`. Each
is joined back to its candidate (same backward model, same instruction) and to its kept segment (same segment_id,
text = the row's output) for its `segment_id` and stored `instruction_hash`; a set built from rewrites has no
segment text as output and is not rewritten again. So run it after `trainset` (or `iterate`) for iteration K.

The rewriter: `--model`, else M_K (`models:/humpback-forward@m{K}`, the model trained on iteration K's set) when
that alias is registered and `rewrite.iteration_model` is true, else `rewrite.model` ("" = `model.base`). Rows are
keyed by (segment_id, instruction_hash, rewriter_model, prompt_version): chunked, resumable, one seed per pair
(a hash of `rewrite.seed` and the pair's key), lineage and flags (humpback.quality.rewrite_flags) as in augment.
"""
from __future__ import annotations

import argparse
import json
from typing import Any

from humpback.ids import pair_key
from humpback.inference.base import Sampling
from humpback.stage import Context, Stage, StageError
from humpback.tables import TABLES
from humpback.tracking import FORWARD_MODEL, iteration_model

KEYS = TABLES["rewrites"].keys
REWRITE_COLUMNS = TABLES["rewrites"].columns
PAIRS_QUERY = """
SELECT DISTINCT c.segment_id, c.instruction_hash, t.instruction, s.text
FROM training_sets AS t
JOIN candidates AS c
  ON c.backward_model = t.backward_model AND c.instruction = t.instruction AND c.status = 'ok'
JOIN segments AS s
  ON s.segment_id = c.segment_id AND s.text = t.output AND s.drop_reason IS NULL
WHERE t.iteration = :iteration AND t.source = 'augmented' AND (:set_name = '' OR t.set_name = :set_name)
"""


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--iteration", type=int, required=True,
                        help="rewrite the curated pairs of this iteration's training sets")
    parser.add_argument("--model", default=None, metavar="URI",
                        help="the rewriter (default: M_K, models:/humpback-forward@m{K}, when registered and "
                             "rewrite.iteration_model is true, else rewrite.model, else model.base)")
    parser.add_argument("--name", default=None, metavar="NAME",
                        help="only the pairs of this training set (default: every set of the iteration)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N pairs (by segment_id)")
    parser.add_argument("--engine", choices=("transformers", "vllm", "openai"), default=None,
                        help="inference engine (default: config inference.engine)")


def rewrite_settings(config: dict) -> dict[str, Any]:
    """[rewrite], converted and checked."""
    values = config["rewrite"]
    settings = {"model": str(values["model"]), "iteration_model": bool(values["iteration_model"]),
                "min_content_overlap": float(values["min_content_overlap"]),
                "max_copied_share": float(values["max_copied_share"])}
    if not 0.0 <= settings["min_content_overlap"] <= 1.0 or not 0.0 < settings["max_copied_share"] <= 1.0:
        raise StageError("rewrite.min_content_overlap must be in [0, 1] and rewrite.max_copied_share in (0, 1]")
    return settings


def default_rewriter(iteration: int, config: dict) -> tuple[str, str]:
    """(the rewriter's URI, why it was chosen) when --model names none."""
    from humpback.tracking import ModelAliasError, model_version_by_alias

    settings = rewrite_settings(config)
    fallback = settings["model"] or config["model"]["base"]
    source = "rewrite.model" if settings["model"] else "model.base"
    if not settings["iteration_model"]:
        return fallback, f"{source}; rewrite.iteration_model is false"
    try:
        model_version_by_alias(FORWARD_MODEL, f"m{iteration}")
    except ModelAliasError:
        return fallback, f"{source}: M{iteration} ({iteration_model(iteration)}) is not registered"
    return iteration_model(iteration), f"M{iteration}, the model of iteration {iteration}"


def rewrite_task(sampling: dict[str, Any], lineage: dict[str, str], flag_limits: dict[str, float]):
    """Pair (segment_id, instruction_hash, instruction, text) -> rewrite row, on a worker. Each pair samples with its
    own seed, a hash of the run's seed and its key, recorded in `seed` and in the `sampling` JSON."""
    from humpback.inference.base import LENGTH, Request
    from humpback.inference.seeding import row_seed
    from humpback.inference.task import InferenceTask
    from humpback.prompts import REWRITE_SYSTEM, rewrite_prompt
    from humpback.quality.rewrite_flags import rewrite_flags, rewrite_measures

    def seed_of(row: dict) -> int:
        return row_seed(sampling["seed"], pair_key(row["segment_id"], row["instruction_hash"]))

    def format_input(row: dict) -> Request:
        return Request(messages=({"role": "system", "content": REWRITE_SYSTEM},
                                 {"role": "user", "content": rewrite_prompt(row["instruction"], row["text"])}),
                       seed=seed_of(row))

    def format_output(row: dict, generation) -> dict:
        seed = seed_of(row)
        output = None if generation.error else generation.texts[0].strip()
        measures = rewrite_measures(output, row["text"]) if output else {"content_overlap": None,
                                                                          "copied_share": None}
        return {
            "segment_id": row["segment_id"], "instruction_hash": row["instruction_hash"], **lineage,
            "instruction": row["instruction"], "output": output,
            "sampling": json.dumps({**sampling, "run_seed": sampling["seed"], "seed": seed}, sort_keys=True),
            "seed": seed, "finish_reason": generation.finish_reason,
            "status": "error" if generation.error else "ok", "error": generation.error,
            "flags": rewrite_flags(output, row["text"], **flag_limits, truncated=generation.finish_reason == LENGTH)
            if output is not None else [],
            **measures, "prompt_tokens": generation.prompt_tokens, "completion_tokens": generation.completion_tokens,
        }

    return InferenceTask(format_input, format_output, sampling=Sampling(**sampling))


def iteration_pairs(ctx: Context, iteration: int, set_name: str | None):
    """The curated pairs of `iteration` (the rule in the module docstring): segment_id, instruction_hash,
    instruction, text."""
    from humpback.sqlfiles import query_with_params

    ctx.lakehouse.register_tables()
    return query_with_params(ctx.spark, PAIRS_QUERY, {"iteration": iteration, "set_name": set_name or ""})


def check_inputs(ctx: Context, args: argparse.Namespace) -> None:
    """The settings and the rewriter's reference, before the run opens."""
    from humpback.models import resolve_model

    rewrite_settings(ctx.config)
    resolve_model(args.model or default_rewriter(args.iteration, ctx.config)[0])


def run(ctx: Context, args: argparse.Namespace) -> dict[str, float]:
    import mlflow
    from pyspark.sql import functions as F

    from humpback import reporting
    from humpback.inference.spark_adapter import InferencePlan, engine_spec, plan_settings, run_inference
    from humpback.models import resolve_model, stable_model_ref
    from humpback.prompts import REWRITE_TEMPLATE_VERSION

    settings = rewrite_settings(ctx.config)
    lakehouse = ctx.lakehouse
    pairs = iteration_pairs(ctx, args.iteration, args.name)
    if args.limit is not None:
        pairs = pairs.orderBy("segment_id", "instruction_hash").limit(args.limit)
    n_pairs = pairs.count()
    if not n_pairs:
        named = f" of set {args.name!r}" if args.name else ""
        raise StageError(f"no curated pairs{named} for iteration {args.iteration} in `training_sets` (augmented rows "
                         f"whose output is their segment's text): run `humpback trainset --name NAME --iteration "
                         f"{args.iteration}` (or `humpback iterate`) first")
    model_uri, why = (args.model, "--model") if args.model else default_rewriter(args.iteration, ctx.config)
    resolved = resolve_model(model_uri)
    rewriter_model = stable_model_ref(resolved)
    sampling = Sampling.from_settings(ctx.config["rewrite"]).to_dict()
    lineage = {"rewriter_model": rewriter_model, "model_uri": model_uri, "model_version": resolved.version or "",
               "prompt_version": REWRITE_TEMPLATE_VERSION}
    flag_limits = {"min_content_overlap": settings["min_content_overlap"],
                   "max_copied_share": settings["max_copied_share"]}

    keys = pairs.select("segment_id", "instruction_hash")
    todo = pairs
    if lakehouse.exists("rewrites"):
        done = lakehouse.read("rewrites").where(
            (F.col("rewriter_model") == rewriter_model) & (F.col("prompt_version") == REWRITE_TEMPLATE_VERSION)
            & (F.col("status") == "ok")).select("segment_id", "instruction_hash")
        todo = pairs.join(done, ["segment_id", "instruction_hash"], "left_anti")  # errors are retried
    todo = todo.withColumn("rewriter_model", F.lit(rewriter_model)) \
        .withColumn("prompt_version", F.lit(REWRITE_TEMPLATE_VERSION))
    plan = InferencePlan(stage="rewrite", table="rewrites", keys=KEYS, output_columns=REWRITE_COLUMNS,
                         spec=engine_spec(ctx.config, model_uri, args.engine),
                         handler=rewrite_task(sampling, lineage, flag_limits), **plan_settings(ctx.config))
    print(f"rewrite: iteration {args.iteration}, {n_pairs} curated pairs"
          + (f" of set {args.name!r}" if args.name else "")
          + f"; rewriter {model_uri} ({rewriter_model}; {why}), prompt {REWRITE_TEMPLATE_VERSION}")
    mlflow.log_params({"iteration": args.iteration, "set_name": args.name or "", "model_uri": model_uri,
                       "rewriter_model": rewriter_model, "rewriter_choice": why,
                       "prompt_version": REWRITE_TEMPLATE_VERSION, "engine": plan.spec.kind,
                       **{f"sampling.{k}": v for k, v in sampling.items()}})
    stats = run_inference(lakehouse, todo, plan)

    rewrites = lakehouse.read("rewrites").where(
        (F.col("rewriter_model") == rewriter_model) & (F.col("prompt_version") == REWRITE_TEMPLATE_VERSION)) \
        .join(keys, ["segment_id", "instruction_hash"])  # this iteration's pairs only
    status_counts = {r["status"]: r["count"] for r in rewrites.groupBy("status").count().collect()}
    flag_counts = {r["flag"]: r["count"] for r in
                   rewrites.select(F.explode("flags").alias("flag")).groupBy("flag").count().collect()}
    written = rewrites.where(F.col("status") == "ok")
    agg = written.agg(F.count("*").alias("n"), F.sum((F.size("flags") == 0).cast("int")).alias("usable"),
                      F.avg("content_overlap").alias("overlap"), F.avg("copied_share").alias("copied"),
                      F.avg(F.length("output")).alias("chars")).first()
    ok, usable = int(agg["n"]), int(agg["usable"] or 0)
    summary = {"pairs": n_pairs, "rows_this_run": stats.rows_done, "prompt_tokens": stats.prompt_tokens,
               "completion_tokens": stats.completion_tokens, "tokens_per_second": stats.tokens_per_second,
               "rewrites": sum(status_counts.values()), "usable": usable, "flagged": ok - usable,
               "usable_share": usable / n_pairs, "truncated": flag_counts.get("truncated", 0),
               "content_overlap_mean": float(agg["overlap"] or 0.0), "copied_share_mean": float(agg["copied"] or 0.0),
               "output_chars_mean": float(agg["chars"] or 0.0)}
    reporting.log_counts("status", status_counts)
    reporting.log_counts("flag", flag_counts)
    print(f"rewrite: {stats.rows_done} rewrites written this run ({stats.completion_tokens} tokens generated, "
          f"{stats.tokens_per_second:.0f} tokens/s); of the iteration's {n_pairs} pairs, {usable} have a usable "
          f"rewrite ({100 * summary['usable_share']:.1f}%), {ok - usable} a flagged one")
    print(f"rewrite: mean content-word overlap with the original {summary['content_overlap_mean']:.2f} "
          f"(flagged below rewrite.min_content_overlap = {settings['min_content_overlap']:g}), mean copied share "
          f"{summary['copied_share_mean']:.2f}, mean length {summary['output_chars_mean']:.0f} characters")
    print(reporting.format_counts("rewrites by status", status_counts))
    if flag_counts:
        print(reporting.format_counts("flags (a rewrite may have several)", flag_counts, total=ok))
    print(f"rewrite: next: `humpback trainset --name NAME --iteration {args.iteration} --output-source rewritten`")
    return summary


STAGE = Stage("rewrite", "Rewrite each curated pair's web text as the answer to its instruction (Nguyen et al. "
              "2024) into `rewrites`.", run, options,
              reads=("training_sets", "candidates", "segments"), writes=("rewrites",),
              settings=("rewrite", "inference"), run_name=lambda ctx, args: f"rewrite-{args.iteration}",
              prompts=("rewrite",), check=check_inputs)
