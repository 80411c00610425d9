"""`humpback iterate`: the loop after augmentation. For k = 1..N: M(k-1) rates the whole candidate pool, the
curated pairs plus the seed become training set k, and M(k) is trained on it from the base model (paper §1.6).
With `scorer_check.run_in_iterate`, each scorer M(k-1) is first checked on the labelled seed dev pairs
(`scorer-check`), and its precision, recall and AUC are logged at step k of the iterate run: whether the scorer
improved from one iteration to the next."""
from __future__ import annotations

import argparse

from humpback.stage import Context, Stage, StageError
from humpback.stages import curate, evaluate, scorer_check, train, trainset
from humpback.tracking import iteration_model



def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--iterations", type=int, default=None, help="how many (default: config iterate.iterations)")
    parser.add_argument("--start", type=int, default=1, help="first iteration (M(start-1) must be registered)")
    parser.add_argument("--mode", choices=("generate", "logprob"), default=None, help="rating mode (config curate.mode)")
    parser.add_argument("--stop-when-no-gain", action="store_true", default=None,
                        help="evaluate M(k) against M(k-1) after each iteration; stop when it no longer wins")


def pinned_scorer(k: int) -> str:
    """M(k-1) pinned to its registered version (models:/humpback-forward/N): curate and trainset name the same
    model even if the alias moves while the iteration runs."""
    from humpback.models import resolve_model, stable_model_ref

    return stable_model_ref(resolve_model(iteration_model(k - 1)))


def check_scorer(ctx: Context, k: int, scorer: str, mode: str) -> None:
    """scorer-check for M(k-1) in the mode curate rates with, its headline numbers logged at step k of the iterate
    run. A check that cannot run
    (a seed without dev pairs) is a diagnostic missing, not a reason to stop the loop: one line, and on."""
    import mlflow

    try:
        summary = scorer_check.STAGE.call(ctx, scorer=scorer, iteration=k, mode=mode) or {}
    except StageError as err:
        print(f"iterate: no scorer check for M{k - 1} ({err}); going on")
        return
    mlflow.log_metrics({f"scorer_check.{key}": summary[key] for key in scorer_check.HEADLINE if key in summary},
                       step=k)


def run_iteration(ctx: Context, k: int, scorer: str, mode: str, settings: dict) -> None:
    """Check M(k-1) as a scorer (when configured), curate with it, build training set k, train M(k) from the base
    model."""
    set_name = settings["set_name"].format(iteration=k)
    if ctx.config["scorer_check"]["run_in_iterate"]:
        check_scorer(ctx, k, scorer, mode)
    curate.STAGE.call(ctx, iteration=k, scorer=scorer, mode=mode)
    trainset.STAGE.call(ctx, name=set_name, iteration=k, scorer=scorer, mode=mode)
    train.STAGE.call(ctx, direction="forward", dataset=set_name, alias=f"m{k}", skip_gate=True)


def latest_win_rate(ctx: Context, model: str, baseline: str) -> float | None:
    from pyspark.sql import functions as F

    if not ctx.lakehouse.exists("evaluations"):
        return None
    rows = ctx.lakehouse.read("evaluations").where((F.col("model") == model) & (F.col("baseline") == baseline)) \
        .orderBy(F.col("evaluated_at").desc()).limit(1).collect()
    return rows[0]["win_rate"] if rows else None


def run(ctx: Context, args: argparse.Namespace) -> None:
    import mlflow

    settings = ctx.config["iterate"]
    iterations = args.iterations or int(settings["iterations"])
    mode = args.mode or ctx.config["curate"]["mode"]
    stop_rule = args.stop_when_no_gain if args.stop_when_no_gain is not None else bool(settings["stop_when_no_gain"])
    if iterations < 1 or args.start < 1:
        raise StageError("--iterations and --start must be at least 1")
    mlflow.log_params({"iterations": iterations, "start": args.start, "mode": mode, "stop_when_no_gain": stop_rule})
    for k in range(args.start, args.start + iterations):
        print(f"\n##### iteration {k}: M{k - 1} rates the pool, M{k} is trained", flush=True)
        run_iteration(ctx, k, pinned_scorer(k), mode, settings)
        mlflow.set_tag(f"iteration.{k}", iteration_model(k))
        if stop_rule:
            model, baseline = iteration_model(k), iteration_model(k - 1)
            evaluate.STAGE.call(ctx, model=model, baseline=baseline)
            win_rate = latest_win_rate(ctx, model, baseline)
            mlflow.log_metric("win_rate_over_previous", win_rate or 0.0, step=k)
            if win_rate is not None and win_rate <= 0.5:
                print(f"iterate: M{k} wins {100 * win_rate:.1f}% against M{k - 1}: no gain, stopping")
                break
    print("\niterate: done; models: " + ", ".join(iteration_model(k) for k in range(args.start, k + 1)))


STAGE = Stage("iterate", "Rate, select and train for N iterations (M1, M2, ...).", run, options,
              reads=("candidates", "segments", "seed"), settings=("iterate",))
