"""`humpback iterate`: the loop after augmentation. For k = 1..N: M(k-1) rates the whole candidate pool, the
curated pairs plus the seed become training set k, and M(k) is trained on it from the base model (paper §1.6)."""
from __future__ import annotations

import argparse
import sys

from pipelines.common import Context, StageError, run_stage, run_stages, stage_parser

FORWARD = "humpback-forward"


def build_parser() -> argparse.ArgumentParser:
    parser = stage_parser("iterate", "Rate, select and train for N iterations (M1, M2, ...).")
    parser.add_argument("--iterations", type=int, default=None, help="how many (default: config iterate.iterations)")
    parser.add_argument("--start", type=int, default=1, help="first iteration (M(start-1) must be registered)")
    parser.add_argument("--mode", choices=("generate", "logprob"), default=None, help="rating mode (config curate.mode)")
    parser.add_argument("--stop-when-no-gain", action="store_true", default=None,
                        help="evaluate M(k) against M(k-1) after each iteration; stop when it no longer wins")
    return parser


def pinned_scorer(k: int) -> str:
    """M(k-1) pinned to its registered version (models:/humpback-forward/N): curate and trainset name the same
    model even if the alias moves while the iteration runs."""
    from humpback.models import resolve_model, stable_model_ref

    return stable_model_ref(resolve_model(f"models:/{FORWARD}@m{k - 1}"))


def iteration_steps(k: int, scorer: str, mode: str, settings: dict,
                    max_steps: int | None) -> list[tuple[str, list[str]]]:
    set_name = settings["set_name"].format(iteration=k)
    train = ["--direction", "forward", "--dataset", set_name, "--alias", f"m{k}", "--skip-gate"]
    if max_steps:
        train += ["--max-steps", str(max_steps)]
    return [
        ("curate", ["--iteration", str(k), "--scorer", scorer, "--mode", mode]),
        ("trainset", ["--name", set_name, "--iteration", str(k), "--scorer", scorer, "--mode", mode]),
        ("train", train),
    ]


def latest_win_rate(ctx: Context, model: str, baseline: str) -> float | None:
    from pyspark.sql import functions as F

    if not ctx.lakehouse.exists("evaluations"):
        return None
    rows = ctx.lakehouse.read("evaluations").where((F.col("model") == model) & (F.col("baseline") == baseline)) \
        .orderBy(F.col("evaluated_at").desc()).limit(1).collect()
    return rows[0]["win_rate"] if rows else None


def run(ctx: Context, args: argparse.Namespace) -> int:
    from humpback.tracking import start_run

    settings = ctx.config["iterate"]
    iterations = args.iterations or int(settings["iterations"])
    mode = args.mode or ctx.config["curate"]["mode"]
    stop_rule = args.stop_when_no_gain if args.stop_when_no_gain is not None else bool(settings["stop_when_no_gain"])
    max_steps = int(settings.get("max_steps") or 0) or None
    if iterations < 1 or args.start < 1:
        raise StageError("--iterations and --start must be at least 1")
    ctx.mlflow_uri  # noqa: B018 - configures the tracking store
    with start_run("iterate", ctx.config, stage="iterate") as parent:
        import mlflow

        mlflow.log_params({"iterations": iterations, "start": args.start, "mode": mode, "stop_when_no_gain": stop_rule})
        for k in range(args.start, args.start + iterations):
            print(f"\n##### iteration {k}: M{k - 1} rates the pool, M{k} is trained", flush=True)
            run_stages(iteration_steps(k, pinned_scorer(k), mode, settings, max_steps), args)
            mlflow.set_tag(f"iteration.{k}", f"models:/{FORWARD}@m{k}")
            if stop_rule:
                model, baseline = f"models:/{FORWARD}@m{k}", f"models:/{FORWARD}@m{k - 1}"
                run_stages([("evaluate", ["--model", model, "--baseline", baseline])], args)
                win_rate = latest_win_rate(ctx, model, baseline)
                mlflow.log_metric("win_rate_over_previous", win_rate or 0.0, step=k)
                if win_rate is not None and win_rate <= 0.5:
                    print(f"iterate: M{k} wins {100 * win_rate:.1f}% against M{k - 1}: no gain, stopping")
                    break
        print(f"\niterate: done; MLflow run {parent.info.run_id}; models: "
              + ", ".join(f"models:/{FORWARD}@m{k}" for k in range(args.start, k + 1)))
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_stage(build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
