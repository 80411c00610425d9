"""`humpback scorer-check`: how well a forward model, rating as curate does, tells good pairs from bad -> `scorer_checks`.

The labelled set (humpback.evaluation.scorer_check) comes from the seed's dev split: each true pair as a positive,
and as negatives its output under another pair's instruction, its output cut to the first sentence, and (when the
rows carry a topic) another pair's output of the same topic; a labelled file (`--labelled`) adds pairs labelled by
hand. The mix depends only on the dev pairs and the seed (`scorer_check.seed`), both recorded. The scorer rates
every pair through curate's own task (humpback.inference.rating_task: the same rubric, requests, sampling and
parsing) as a Spark job, chunked and resumable, one row per pair in `scorer_checks`. The report: precision and
recall at the curation threshold (`trainset.min_score` unless `--threshold` or `scorer_check.threshold` says
otherwise), ROC AUC, the score distribution of each label (an MLflow plot), and the threshold that would accept the
paper's share of pairs (8.3%); printed on one screen and logged to MLflow. `iterate` runs it for each scorer M(k-1)
(`scorer_check.run_in_iterate`).
"""
from __future__ import annotations

import argparse
from typing import Any

from humpback.stage import Context, Stage, StageError
from humpback.tables import TABLES
from humpback.tracking import iteration_model

TABLE = "scorer_checks"
KEYS = TABLES[TABLE].keys
COLUMNS = TABLES[TABLE].columns
DEFAULT_SCORER = iteration_model(0)
SEED_SOURCE = "seed:dev"  # `source` of the pairs built from the seed table's dev split
# The columns of a labelled pair that go to the workers and come back unchanged.
PAIR_COLUMNS = {"check_id": "string", "pair_id": "string", "kind": "string", "label": "int",
                "instruction_id": "string", "output_id": "string", "instruction": "string", "output": "string",
                "source": "string", "set_seed": "long"}
# Summary numbers that iterate logs beside each iteration.
HEADLINE = ("precision", "recall", "auc", "mean_score_positive", "mean_score_negative", "paper_threshold")


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scorer", default=None, metavar="URI",
                        help=f"the forward model to check, e.g. models:/humpback-forward@m1 (default: {DEFAULT_SCORER})")
    parser.add_argument("--mode", choices=("generate", "logprob"), default=None,
                        help="rating mode, as in curate (default: scorer_check.mode, logprob)")
    parser.add_argument("--labelled", default=None, metavar="PATH",
                        help="also rate these hand-labelled pairs: JSONL of {\"instruction\", \"output\", \"label\"} "
                             "(label 1 = should be accepted, 0 = rejected)")
    parser.add_argument("--limit", type=int, default=None,
                        help="only the first N dev pairs (by example_id), each with its negatives "
                             "(default: scorer_check.limit, 0 = all)")
    parser.add_argument("--threshold", type=float, default=None,
                        help="accept score >= this (default: scorer_check.threshold, else trainset.min_score)")
    parser.add_argument("--iteration", type=int, default=None,
                        help="the iteration this scorer rates for (recorded; iterate passes it)")
    parser.add_argument("--engine", choices=("transformers", "vllm", "openai"), default=None)


def check_threshold(args: argparse.Namespace, config: dict) -> tuple[float, str]:
    """(threshold, where it came from): --threshold, else scorer_check.threshold when set (> 0), else the curation
    threshold trainset.min_score."""
    if args.threshold is not None:
        return float(args.threshold), "--threshold"
    if float(config["scorer_check"]["threshold"]) > 0:
        return float(config["scorer_check"]["threshold"]), "scorer_check.threshold"
    return float(config["trainset"]["min_score"]), "trainset.min_score"


def labelled_set(ctx: Context, args: argparse.Namespace, seed: int) -> list[tuple[Any, str]]:
    """[(LabelledPair, source)]: the seed's dev pairs (the first --limit of them) with their negatives, then the
    labelled file's pairs; a pair that occurs twice is kept once."""
    from humpback.evaluation.scorer_check import dev_pairs, labelled_pairs, pair_id, read_labelled_file

    limit = args.limit if args.limit is not None else int(ctx.config["scorer_check"]["limit"])
    rows = [row.asDict() for row in ctx.lakehouse.read("seed").where("split = 'dev'")
            .select("example_id", "instruction", "output", "split").collect()]
    rows = dev_pairs(rows)[:limit or None]
    pairs = [(pair, SEED_SOURCE) for pair in labelled_pairs(rows, seed, split=None)]
    if args.labelled:
        pairs += [(pair, str(args.labelled)) for pair in read_labelled_file(args.labelled, seed)]
    if not pairs:
        raise StageError("the `seed` table has no dev pairs to build a labelled set from (its dev split is "
                         "seed.dev_fraction of the pairs); give hand-labelled pairs with --labelled PATH")
    unique = {}
    for pair, source in pairs:
        unique.setdefault(pair_id(pair), (pair, source))
    return list(unique.values())


def check_task(mode: str, sampling: dict[str, Any], lineage: dict[str, Any]):
    """The workers' handler: curate's rating task over labelled pairs, each row back as a `scorer_checks` row."""
    from humpback.inference.rating_task import rating_task

    task = rating_task(mode, {}, sampling or None, keys=("pair_id",), output_field="output")

    def handle(rows: list[dict], engine) -> list[dict]:
        from datetime import UTC, datetime

        checked_at = datetime.now(UTC)
        rated = task(rows, engine)
        return [{**{name: row[name] for name in PAIR_COLUMNS}, **lineage, "score": rating.get("score"),
                 "score_probs": rating.get("score_probs"), "score_source": rating.get("score_source"),
                 "parse_status": rating.get("parse_status"), "status": rating["status"], "error": rating.get("error"),
                 "rating_seed": rating.get("seed"), "prompt_tokens": rating.get("prompt_tokens") or 0,
                 "completion_tokens": rating.get("completion_tokens") or 0, "checked_at": checked_at}
                for row, rating in zip(rows, rated)]

    return handle


def check_mode(ctx: Context, args: argparse.Namespace) -> str:
    mode = args.mode or ctx.config["scorer_check"]["mode"]
    if mode not in ("generate", "logprob"):
        raise StageError(f"scorer_check.mode must be generate or logprob, not {mode!r}")
    return mode


def check_inputs(ctx: Context, args: argparse.Namespace) -> None:
    """The mode, the threshold and the scorer's reference, before the run opens."""
    from humpback.models import resolve_model

    check_mode(ctx, args)
    check_threshold(args, ctx.config)
    resolve_model(args.scorer or DEFAULT_SCORER)


def run(ctx: Context, args: argparse.Namespace) -> dict[str, float]:
    import mlflow
    from pyspark.sql import functions as F

    from humpback.evaluation.scorer_check import check_id, pair_id
    from humpback.inference.rating_task import generate_sampling
    from humpback.inference.spark_adapter import InferencePlan, engine_spec, plan_settings, run_inference
    from humpback.models import resolve_model, stable_model_ref
    from humpback.prompts import RATING_TEMPLATE_VERSION
    from humpback.tables import ddl

    settings = ctx.config["scorer_check"]
    mode = check_mode(ctx, args)
    seed = int(settings["seed"])
    scorer_uri = args.scorer or DEFAULT_SCORER
    scorer_model = stable_model_ref(resolve_model(scorer_uri))
    threshold, threshold_source = check_threshold(args, ctx.config)
    sampling = generate_sampling(ctx.config["curate"]) if mode == "generate" else {}

    pairs = labelled_set(ctx, args, seed)
    ids = [pair_id(pair) for pair, _ in pairs]
    check = check_id(scorer_model, mode, seed, RATING_TEMPLATE_VERSION, sampling, ids)
    lineage = {"scorer_model": scorer_model, "scorer_uri": scorer_uri, "mode": mode,
               "prompt_version": RATING_TEMPLATE_VERSION}
    records = [(check, identity, pair.kind, pair.label, pair.instruction_id, pair.output_id, pair.instruction,
                pair.output, source, seed) for (pair, source), identity in zip(pairs, ids)]
    todo = ctx.spark.createDataFrame(records, ddl(PAIR_COLUMNS))
    if ctx.lakehouse.exists(TABLE):  # a rerun of the same check rates only what is missing or failed
        done = ctx.lakehouse.read(TABLE).where((F.col("check_id") == check) & (F.col("status") == "ok"))
        todo = todo.join(done.select("check_id", "pair_id"), ["check_id", "pair_id"], "left_anti")
    plan = InferencePlan(stage="scorer-check", table=TABLE, keys=KEYS, output_columns=COLUMNS,
                         spec=engine_spec(ctx.config, scorer_uri, args.engine),
                         handler=check_task(mode, sampling, lineage), **plan_settings(ctx.config))
    print(f"scorer-check: scorer {scorer_uri} ({scorer_model}), mode {mode}, {len(pairs)} labelled pairs "
          f"(set seed {seed}), check {check}", flush=True)
    mlflow.set_tags({"humpback.scorer": scorer_model, "humpback.check_id": check})
    mlflow.log_params({"scorer_uri": scorer_uri, "scorer_model": scorer_model, "mode": mode, "set_seed": seed,
                       "threshold": threshold, "threshold_source": threshold_source, "check_id": check,
                       "prompt_version": RATING_TEMPLATE_VERSION, "labelled_file": args.labelled or "",
                       **({"iteration": args.iteration} if args.iteration is not None else {}),
                       "seed_version": ctx.lakehouse.version("seed"), "engine": plan.spec.kind,
                       **{f"sampling.{key}": value for key, value in sampling.items()}})
    stats = run_inference(ctx.lakehouse, todo, plan)
    return report(ctx, check, scorer_uri, mode, seed, threshold, threshold_source, stats)


def report(ctx: Context, check: str, scorer_uri: str, mode: str, seed: int, threshold: float, threshold_source: str,
           stats) -> dict[str, float]:
    """Metrics of the check's scored rows: printed on one screen, the plot and the report in MLflow; returns the
    summary (numbers only; a metric without a value, e.g. precision when nothing is accepted, is left out)."""
    import tempfile
    from pathlib import Path

    import mlflow
    from pyspark.sql import functions as F

    from humpback.evaluation.scorer_check import check_report, kind_counts, plot_score_distribution, summary_lines

    rows = ctx.lakehouse.read(TABLE).where(F.col("check_id") == check) \
        .select("pair_id", "kind", "label", "score", "status").orderBy("pair_id").collect()
    scored = [row for row in rows if row["status"] == "ok" and row["score"] is not None]
    if not scored:
        raise StageError(f"no labelled pair got a score from {scorer_uri}: see "
                         f"`humpback sql \"SELECT error, count(*) FROM {TABLE} WHERE check_id = '{check}' GROUP BY 1\"`")
    scores, labels, kinds = ([row[name] for row in scored] for name in ("score", "label", "kind"))
    result = check_report(scores, labels, kinds, threshold)
    counts = kind_counts(scored)
    for line in summary_lines(result, scorer_uri, mode, seed, counts, len(rows) - len(scored), threshold_source):
        print(line)
    with tempfile.TemporaryDirectory() as tmp:
        plot = plot_score_distribution(scores, labels, Path(tmp) / "score_distribution.png",
                                       title=f"{scorer_uri} ({mode}): scores by label")
        mlflow.log_artifact(str(plot), artifact_path="scorer_check")
    mlflow.log_dict({**result, "check_id": check, "kinds": counts}, "scorer_check/report.json")
    summary = {key: result[key] for key in ("n", "positives", "negatives", "accepted", "acceptance_share", "tp", "fp",
                                            "fn", "tn", "precision", "recall", "auc", "threshold", "paper_threshold",
                                            "paper_threshold_precision", "paper_threshold_recall")}
    summary.update({f"mean_score_{name}": value for name, value in result["mean_score"].items()})
    summary.update({f"pairs.{kind}": n for kind, n in counts.items()})
    summary.update({"unscored": len(rows) - len(scored), "rows_this_run": stats.rows_done,
                    "prompt_tokens": stats.prompt_tokens, "completion_tokens": stats.completion_tokens})
    return {key: float(value) for key, value in summary.items() if value is not None}


def run_name(ctx: Context, args: argparse.Namespace) -> str:
    mode = args.mode or ctx.config["scorer_check"]["mode"]
    return f"scorer-check-{args.iteration}-{mode}" if args.iteration is not None else f"scorer-check-{mode}"


STAGE = Stage("scorer-check", "Precision, recall and AUC of a scorer on labelled seed dev pairs -> `scorer_checks`.",
              run, options, reads=("seed",), writes=("scorer_checks",), settings=("scorer_check",),
              run_name=run_name, prompts=("rubric",), check=check_inputs)
