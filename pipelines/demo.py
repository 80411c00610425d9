"""`humpback demo`: the whole loop on the embedded default (sample corpus, embedded seed, SmolLM2), one process.

ingest -> segment -> seed -> train M_yx and M0 -> augment -> iterate (curate, training set, M1, ...) -> evaluate
the last model against M0, then a summary table and where to look next. conf/demo.toml sizes it for 2 CPU cores.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from pipelines.common import Context, StageError, run_stage, run_stages, stage_parser

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEMO_CONFIG = PROJECT_ROOT / "conf" / "demo.toml"


def build_parser() -> argparse.ArgumentParser:
    parser = stage_parser("demo", "The whole loop on the embedded sample corpus, seed and model.")
    parser.add_argument("--iterations", type=int, default=None,
                        help="curation iterations (M1, M2, ...); default: [iterate] iterations (1 in conf/demo.toml)")
    return parser


def demo_iterations(args: argparse.Namespace, config: dict) -> int:
    """--iterations, else [iterate] iterations (so `--set iterate.iterations=2` is honoured)."""
    iterations = args.iterations if args.iterations is not None else int(config["iterate"]["iterations"])
    if iterations < 1:
        raise StageError("--iterations must be at least 1")
    return iterations


def demo_steps(config: dict, iterations: int) -> list[tuple[str, list[str]]]:
    settings = config["demo"]
    max_steps = ["--max-steps", str(settings["max_steps"])] if settings.get("max_steps") else []
    last = f"models:/humpback-forward@m{iterations}"
    return [
        ("ingest", ["--input", str(PROJECT_ROOT / settings["corpus"])]),
        ("segment", []),
        ("seed", ["--input", str(PROJECT_ROOT / settings["seed"]), "--format", "jsonl"]),
        ("train", ["--direction", "backward", "--dataset", "seed", "--alias", "myx", *max_steps]),
        ("train", ["--direction", "forward", "--dataset", "seed", "--alias", "m0", *max_steps, "--skip-gate"]),
        ("augment", ["--limit", str(settings["segments"])]),
        ("iterate", ["--iterations", str(iterations)]),
        ("evaluate", ["--model", last, "--baseline", "models:/humpback-forward@m0",
                      "--limit", str(settings["eval_prompts"])]),
    ]


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


def run(ctx: Context, args: argparse.Namespace) -> int:
    from humpback.output import format_table

    started = time.monotonic()
    if getattr(args, "config", None) is None:
        args.config = str(DEMO_CONFIG)
        ctx = Context(args)
    iterations = demo_iterations(args, ctx.config)
    print(f"humpback demo: lakehouse {ctx.lakehouse.root}, MLflow {ctx.mlflow_uri}, settings {args.config}")
    run_stages(demo_steps(ctx.config, iterations), args)
    minutes = (time.monotonic() - started) / 60
    print(f"\n=== humpback demo: done in {minutes:.1f} minutes\n")
    print(format_table(["", "value"], summary_rows(ctx, iterations)))
    print("""
Where to look next:
  make mlflow-ui            # runs, metrics, plots and the model registry (myx, m0, m1, ...) at http://127.0.0.1:5000
  .venv/bin/humpback tables
  .venv/bin/humpback sql "SELECT coalesce(drop_reason, 'kept') AS reason, count(*) FROM segments GROUP BY 1"
  .venv/bin/humpback sql "SELECT set_name, source, count(*) FROM training_sets GROUP BY 1, 2"
  .venv/bin/humpback sql "SELECT model, baseline, win_rate, stderr FROM evaluations"
  notebooks/explore.ipynb   # SQL over the lakehouse, with plots""")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_stage(build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
