"""`humpback demo`: the whole loop on the embedded default (sample corpus, embedded seed, SmolLM2), one process.

ingest -> segment -> seed -> train M_yx and M0 -> augment -> iterate (curate, training set, M1, ...) -> evaluate
the last model against M0, then a summary table and where to look next. conf/demo.toml sizes it for 2 CPU cores.
`--rewrite` (`make demo REWRITE=1`) also has the last model M_N rewrite the curated pairs of iteration N
(`humpback rewrite`) and builds a second training set from the rewrites (`trainset --output-source rewritten`).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from humpback.resources import conf_file, source_checkout
from humpback.stage import Context, Stage, StageError
from humpback.stages import augment, evaluate, ingest, iterate, rewrite, seed, segment, train, trainset
from humpback.tracking import iteration_model

DEMO_CONFIG = conf_file("demo.toml")


def project_path(path: str) -> str:
    """[demo] paths are relative to the source checkout (the sample data is not in the wheel), else to the working
    directory."""
    return str((source_checkout() or Path.cwd()) / path)


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--iterations", type=int, default=None,
                        help="curation iterations (M1, M2, ...); default: [iterate] iterations (1 in conf/demo.toml)")
    parser.add_argument("--rewrite", action="store_true",
                        help="after the loop, M_N rewrites the curated pairs of the last iteration (`humpback "
                             "rewrite`) and a second training set is built from the rewrites (`make demo REWRITE=1`)")


def demo_iterations(args: argparse.Namespace, config: dict) -> int:
    """--iterations, else [iterate] iterations (so `--set iterate.iterations=2` is honoured)."""
    iterations = args.iterations if args.iterations is not None else int(config["iterate"]["iterations"])
    if iterations < 1:
        raise StageError("--iterations must be at least 1")
    return iterations


def rewritten_set_name(ctx: Context, iteration: int) -> str:
    return ctx.config["iterate"]["set_name"].format(iteration=iteration) + "-rewritten"


def run_rewrite_stages(ctx: Context, iteration: int) -> None:
    """M_K rewrites the curated pairs of iteration K; a second set of iteration K takes its outputs from them, with
    the same scorer (M(K-1), pinned) and mode as the set iterate built. Nothing when the set has no curated pair."""
    from pyspark.sql import functions as F

    web_set = ctx.config["iterate"]["set_name"].format(iteration=iteration)
    curated = ctx.lakehouse.read("training_sets").where((F.col("set_name") == web_set)
                                                        & (F.col("source") == "augmented")).count()
    if not curated:
        print(f"\ndemo: training set {web_set!r} holds no curated pair: nothing to rewrite")
        return
    rewriter = iterate.pinned_scorer(iteration + 1)  # M_K, pinned: a rerun of the demo registers a new version
    rewrite.STAGE.call(ctx, iteration=iteration, model=rewriter)
    trainset.STAGE.call(ctx, name=rewritten_set_name(ctx, iteration), iteration=iteration,
                        scorer=iterate.pinned_scorer(iteration), mode=ctx.config["curate"]["mode"],
                        output_source="rewritten", rewriter=rewriter)


def run_demo_stages(ctx: Context, iterations: int, rewrite_outputs: bool = False) -> None:
    settings = ctx.config["demo"]
    ingest.STAGE.call(ctx, input=[project_path(settings["corpus"])])
    segment.STAGE.call(ctx)
    seed.STAGE.call(ctx, input=project_path(settings["seed_file"]), format="jsonl")
    train.STAGE.call(ctx, direction="backward", dataset="seed", alias="myx")
    train.STAGE.call(ctx, direction="forward", dataset="seed", alias="m0", skip_gate=True)
    augment.STAGE.call(ctx, limit=settings["segments"])
    iterate.STAGE.call(ctx, iterations=iterations)
    if rewrite_outputs:
        run_rewrite_stages(ctx, iterations)
    evaluate.STAGE.call(ctx, model=iteration_model(iterations), baseline=iteration_model(0),
                        limit=settings["eval_prompt_count"])


def rewrite_rows(ctx: Context, iteration: int) -> list[list]:
    """The rewrite step's numbers: usable rewrites, and the rewritten set against the web set."""
    from pyspark.sql import functions as F

    if not ctx.lakehouse.exists("rewrites"):
        return [["rewrites", f"none (iteration {iteration} curated no pair)"]]
    rewriter = iterate.pinned_scorer(iteration + 1)
    rewrites = ctx.lakehouse.read("rewrites").where((F.col("status") == "ok") & (F.col("rewriter_model") == rewriter))
    usable = rewrites.where(F.size("flags") == 0).count()
    flags = {row["flag"]: row["count"] for row in
             rewrites.select(F.explode("flags").alias("flag")).groupBy("flag").count().collect()}
    training = ctx.lakehouse.read("training_sets").where((F.col("iteration") == iteration)
                                                         & (F.col("source") == "augmented"))
    web = training.where(F.col("set_name") == ctx.config["iterate"]["set_name"].format(iteration=iteration)).count()
    rewritten = training.where(F.col("set_name") == rewritten_set_name(ctx, iteration)).count()
    return [["rewrites usable / written", f"{usable} / {rewrites.count()}" + (
                " (" + ", ".join(f"{name} {n}" for name, n in sorted(flags.items(), key=lambda item: -item[1])) + ")"
                if flags else "")],
            [f"iteration {iteration}: augmented pairs, rewritten / web set", f"{rewritten} / {web}"]]


def summary_rows(ctx: Context, iterations: int) -> list[list]:
    """The demo's headline numbers, read back from the lakehouse."""
    from pyspark.sql import functions as F

    lakehouse = ctx.lakehouse
    segments = lakehouse.read("segments")
    written = lakehouse.read("candidates").where("status = 'ok'")
    candidates = written.count()
    flags = {row["flag"]: row["count"] for row in
             written.select(F.explode("flags").alias("flag")).groupBy("flag").count().collect()}
    flagged = written.where(F.size("flags") > 0).count()
    training = lakehouse.read("training_sets")
    rows = [
        ["pages", lakehouse.read("pages").count()],
        ["segments (kept / all)", f"{segments.where('drop_reason IS NULL').count()} / {segments.count()}"],
        ["candidates (instructions written)", candidates],
        ["candidates flagged (left out)", f"{flagged} of {candidates}" + (
            " (" + ", ".join(f"{name} {n}" for name, n in sorted(flags.items(), key=lambda item: -item[1])) + ")"
            if flags else "")],
    ]
    for k in range(1, iterations + 1):
        curated = training.where((F.col("iteration") == k) & (F.col("source") == "augmented")).count()
        rated = lakehouse.read("ratings").where((F.col("iteration") == k) & (F.col("status") == "ok")).count()
        rows.append([f"iteration {k}: curated pairs / rated", f"{curated} / {rated}"
                     + (f" ({100.0 * curated / rated:.1f}% accepted)" if rated else "")])
    evaluation = lakehouse.read("evaluations").orderBy(F.col("evaluated_at").desc()).first()
    rows.append([f"win rate of M{iterations} over M0", f"{100 * evaluation['win_rate']:.1f}% ± "
                 f"{100 * evaluation['stderr']:.1f} ({evaluation['wins']}W/{evaluation['ties']}T/"
                 f"{evaluation['losses']}L, judge {evaluation['judge']})"])
    rows.append(["answers cut by the token budget (M / M0)",
                 f"{evaluation['model_truncated']} / {evaluation['baseline_truncated']} of {evaluation['n_prompts']} "
                 "(conf/demo.toml's evaluate.max_new_tokens)"])
    return rows


def run(ctx: Context, args: argparse.Namespace) -> None:
    from humpback.output import format_table

    started = time.monotonic()
    if getattr(args, "config", None) is None:
        args.config = str(DEMO_CONFIG)
        ctx = Context(args)
    iterations = demo_iterations(args, ctx.config)
    rewrite_outputs = bool(getattr(args, "rewrite", False))
    print(f"humpback demo: lakehouse {ctx.lakehouse.root}, MLflow {ctx.mlflow_uri}, settings {args.config}")
    run_demo_stages(ctx, iterations, rewrite_outputs)
    minutes = (time.monotonic() - started) / 60
    print(f"\n=== humpback demo: done in {minutes:.1f} minutes\n")
    rows = summary_rows(ctx, iterations)
    if rewrite_outputs:
        rows = rows[:-2] + rewrite_rows(ctx, iterations) + rows[-2:]  # before the evaluation's rows
    print(format_table(["", "value"], rows))
    print("""
Where to look next:
  make mlflow-ui            # runs, metrics, plots and the model registry (myx, m0, m1, ...) at http://127.0.0.1:5000
  .venv/bin/humpback tables
  .venv/bin/humpback sql "SELECT coalesce(drop_reason, 'kept') AS reason, count(*) FROM segments GROUP BY 1"
  .venv/bin/humpback sql "SELECT set_name, source, count(*) FROM training_sets GROUP BY 1, 2"
  .venv/bin/humpback sql "SELECT model, baseline, win_rate, stderr FROM evaluations"
  notebooks/explore.ipynb   # SQL over the lakehouse, with plots""")
    if rewrite_outputs:
        print('  .venv/bin/humpback sql "SELECT flags, content_overlap, output FROM rewrites"')


STAGE = Stage("demo", "The whole loop on the embedded sample corpus, seed and model.", run, options,
              settings=("demo",), tracked=False)  # each stage it runs has its own MLflow run
