"""`humpback curate`: a forward model rates every (instruction, segment) pair on the paper's rubric -> `ratings`.

The modes (generate: reasoning then `Score: N`, the score line guided when the free text has none; logprob: the
expected score from the probabilities of 1..5) and the requests are humpback/inference/rating_task.py's, shared with
`scorer-check` so that it measures the scorer as curation uses it.
"""
from __future__ import annotations

import argparse
from typing import Any

from humpback.inference.rating_task import generate_sampling, generate_task, logprob_task
from humpback.stage import Context, Stage, StageError
from humpback.tables import TABLES
from humpback.tracking import iteration_model

KEYS = TABLES["ratings"].keys
RATING_COLUMNS = TABLES["ratings"].columns


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--iteration", type=int, required=True, help="1 rates with M0, 2 with M1, ...")
    parser.add_argument("--scorer", default=None, help="forward model (default: config curate.scorer, else M(K-1): "
                                                       "models:/humpback-forward@m{K-1})")
    parser.add_argument("--mode", choices=("generate", "logprob"), default=None,
                        help="generate: reasoning then 'Score: N' (the paper); logprob: expected score in one pass")
    parser.add_argument("--limit", type=int, default=None, help="only the first N candidates (by segment_id)")
    parser.add_argument("--backward-model", default=None,
                        help="rate the candidates of this backward model (default: config augment.model)")
    parser.add_argument("--engine", choices=("transformers", "vllm", "openai"), default=None)


def default_scorer(iteration: int) -> str:
    """Iteration K is rated by the model of iteration K-1 (M0 for K = 1), as in the paper."""
    if iteration < 1:
        raise StageError(f"--iteration {iteration}: iterations start at 1 (iteration K is rated by M(K-1))")
    return iteration_model(iteration - 1)


def run(ctx: Context, args: argparse.Namespace) -> dict[str, float]:
    import mlflow
    from pyspark.sql import functions as F

    from humpback.inference.spark_adapter import InferencePlan, engine_spec, plan_settings, run_inference
    from humpback.models import resolve_model, stable_model_ref
    from humpback.prompts import RATING_TEMPLATE_VERSION

    settings = ctx.config["curate"]
    lakehouse = ctx.lakehouse
    mode = args.mode or settings["mode"]
    scorer_uri = args.scorer or settings["scorer"] or default_scorer(args.iteration)
    scorer_model = stable_model_ref(resolve_model(scorer_uri))
    backward_model = stable_model_ref(resolve_model(args.backward_model or ctx.config["augment"]["model"]))
    lineage = {"iteration": args.iteration, "scorer_model": scorer_model, "mode": mode, "scorer_uri": scorer_uri,
               "backward_model": backward_model, "prompt_version": RATING_TEMPLATE_VERSION}

    pairs = lakehouse.read("candidates").where(
        (F.col("backward_model") == backward_model) & (F.col("status") == "ok") & F.col("instruction").isNotNull()
    ).select("segment_id", "instruction", "instruction_hash").join(
        lakehouse.read("segments").where("drop_reason IS NULL").select("segment_id", "text"), "segment_id")
    if args.limit is not None:
        pairs = pairs.orderBy("segment_id").limit(args.limit)
    if lakehouse.exists("ratings"):
        done = lakehouse.read("ratings").where(
            (F.col("iteration") == args.iteration) & (F.col("scorer_model") == scorer_model)
            & (F.col("mode") == mode) & (F.col("status") == "ok")).select("segment_id", "instruction_hash")
        pairs = pairs.join(done, ["segment_id", "instruction_hash"], "left_anti")
    todo = pairs.withColumn("iteration", F.lit(args.iteration)).withColumn("scorer_model", F.lit(scorer_model)) \
        .withColumn("mode", F.lit(mode))
    if mode == "generate":
        sampling = generate_sampling(settings)
        handler = generate_task(sampling, lineage)
    else:
        sampling = {}
        handler = logprob_task(lineage)
    plan = InferencePlan(stage="curate", table="ratings", keys=KEYS, output_columns=RATING_COLUMNS,
                         spec=engine_spec(ctx.config, scorer_uri, args.engine), handler=handler,
                         **plan_settings(ctx.config))
    print(f"curate: iteration {args.iteration}, scorer {scorer_uri} ({scorer_model}), mode {mode}, "
          f"candidates of {backward_model}")
    mlflow.log_params({"iteration": args.iteration, "scorer_uri": scorer_uri, "scorer_model": scorer_model,
                       "mode": mode, "backward_model": backward_model, "prompt_version": RATING_TEMPLATE_VERSION,
                       "engine": plan.spec.kind, **{f"sampling.{k}": v for k, v in sampling.items()}})
    stats = run_inference(lakehouse, todo, plan)
    return report(lakehouse, lineage, stats)


def report(lakehouse, lineage: dict[str, Any], stats) -> dict[str, float]:
    """Counts by status and parse status, tokens, throughput and a score histogram: printed and in MLflow."""
    import tempfile

    import mlflow
    from pyspark.sql import functions as F

    from humpback import reporting

    ratings = lakehouse.read("ratings").where(
        (F.col("iteration") == lineage["iteration"]) & (F.col("scorer_model") == lineage["scorer_model"])
        & (F.col("mode") == lineage["mode"]))
    counts = {name: {(r[name] or "none"): r["count"] for r in ratings.groupBy(name).count().collect()}
              for name in ("status", "parse_status", "raw_parse_status", "score_source")}
    bins = [(r["bin"], r["count"]) for r in ratings.where("score IS NOT NULL")
            .select((F.floor(F.col("score") * 4) / 4).alias("bin")).groupBy("bin").count().collect()]
    total = sum(counts["status"].values())
    raw_failures = total - counts["raw_parse_status"].get("ok", 0)
    metrics = {"rows_this_run": stats.rows_done, "prompt_tokens": stats.prompt_tokens,
               "completion_tokens": stats.completion_tokens, "tokens_per_second": stats.tokens_per_second,
               "ratings": total, "raw_parse_failure_rate": raw_failures / total if total else 0.0,
               "mean_score": ratings.agg(F.avg("score")).first()[0] or 0.0}
    for name, values in counts.items():
        reporting.log_counts(name, values)
    with tempfile.TemporaryDirectory() as tmp:
        plot = reporting.histogram_plot({"ratings": bins}, f"Scores, iteration {lineage['iteration']} "
                                        f"({lineage['mode']})", "score", f"{tmp}/score_histogram.png", 0.25)
        mlflow.log_artifact(str(plot))
    print(f"curate: {stats.rows_done} pairs rated this run ({stats.prompt_tokens + stats.completion_tokens} tokens, "
          f"{stats.tokens_per_second:.0f} tokens/s); {total} ratings for this scorer and mode, "
          f"mean score {metrics['mean_score']:.2f}")
    print(reporting.format_counts("ratings by status", counts["status"]))
    print(reporting.format_counts("ratings by parse status", counts["parse_status"]))
    if lineage["mode"] == "generate":
        print(f"curate: samples without a valid 'Score:' line before the constrained fallback: {raw_failures} "
              f"({100.0 * metrics['raw_parse_failure_rate']:.1f}%)")
    print(reporting.text_histogram("score histogram (bins of 0.25)", bins))
    return metrics


STAGE = Stage("curate", "Rate (instruction, segment) pairs with a forward model into `ratings`.", run, options,
              reads=("candidates", "segments"), writes=("ratings",), settings=("curate", "inference"),
              run_name=lambda ctx, args: f"curate-{args.iteration}-{args.mode or ctx.config['curate']['mode']}",
              prompts=("rubric",))
