"""`humpback trainset`: seed + curated pairs of one iteration -> a new version of `training_sets`.

sql/curated_pairs.sql selects the pairs (score threshold, unflagged candidates, kept segments, one pair per
instruction, no overlap with the evaluation prompts); sql/training_set.sql adds the seed and the source tags.
`--output-source rewritten` gives the curated pairs the outputs `humpback rewrite` wrote for them instead of their
web texts (sql/rewritten_pairs.sql): a pair without a usable rewrite (none, an error, flagged, or overlapping the
evaluation prompts) is left out, and counted.
Each run replaces the rows of one set name in a single Delta commit, so every materialization is a new table
version that `humpback train --dataset NAME@VERSION` can pin, and its MLflow run records the SQL files' sha256
and every parameter.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

from humpback.ids import file_sha256
from humpback.stage import Context, Stage, StageError

TABLE = "training_sets"
MODES = ("generate", "logprob")
# Set names go into Delta's replaceWhere predicate, which is a SQL string with no parameter binding; this
# alphabet has no quote or backslash, so a name can never end the string literal it is placed in.
SET_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
RATED_PAIRS_QUERY = """
SELECT count(DISTINCT segment_id, instruction_hash) AS rated,
       count_if(score_source = 'constrained') AS constrained
FROM ratings
WHERE iteration = :iteration AND scorer_model = :scorer_model AND mode = :mode
  AND backward_model = :backward_model
"""
RATING_CHOICES_QUERY = """
SELECT scorer_model, mode, backward_model, count(*) AS n
FROM ratings
WHERE iteration = :iteration
GROUP BY scorer_model, mode, backward_model
ORDER BY scorer_model, mode, backward_model
"""
SEED_DECONTAMINATED_QUERY = """
SELECT count(*) AS n
FROM (SELECT DISTINCT instruction, output FROM seed)
WHERE eval_overlap(instruction) >= :max_eval_overlap OR eval_overlap(output) >= :max_eval_overlap
"""
LENGTH_BIN_CHARS = {"instruction": 25, "output": 250}
OUTPUT_SOURCES = ("web", "rewritten")
REWRITE_STATUSES = ("ok", "missing", "error", "flagged", "decontaminated")  # sql/rewritten_pairs.sql
REWRITER_CHOICES_QUERY = """
SELECT rewriter_model, count(*) AS n
FROM rewrites
WHERE prompt_version = :prompt_version AND status = 'ok'
GROUP BY rewriter_model
ORDER BY rewriter_model
"""


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", required=True, type=set_name, help="the set's name (letters, digits, _ . -), e.g. a5-iter1")
    parser.add_argument("--iteration", type=int, required=True, help="select on the ratings of this iteration")
    parser.add_argument("--scorer", default=None, metavar="URI",
                        help="use the ratings of this scorer (a model URI, pinned to its version, or a stored "
                             "ratings.scorer_model; default: trainset.scorer_model, else the only one there is)")
    parser.add_argument("--mode", choices=MODES, default=None,
                        help="use ratings of this mode (default: trainset.mode, else the only one there is)")
    parser.add_argument("--backward-model", default=None, metavar="URI",
                        help="use the instructions of this backward model (default: trainset.backward_model, "
                             "else augment.model, pinned to its version)")
    parser.add_argument("--eval-prompts", default=None, metavar="PATH",
                        help="evaluation prompts to decontaminate against (JSONL or AlpacaEval JSON; default: "
                             "evaluate.prompts, else data/sample/eval_prompts.jsonl)")
    parser.add_argument("--output-source", choices=OUTPUT_SOURCES, default="web",
                        help="the curated pairs' outputs: their web texts (the paper; default) or their rewrites by "
                             "`humpback rewrite` (pairs without a usable rewrite are left out, and counted)")
    parser.add_argument("--rewriter", default=None, metavar="URI",
                        help="with --output-source rewritten: the rewrites of this model (a model URI, pinned to its "
                             "version, or a stored rewrites.rewriter_model; default: the only one there is)")


def set_name(name: str) -> str:
    """An argparse type: a set name, checked before anything runs (it goes into a Delta predicate)."""
    if not SET_NAME.match(name):
        raise argparse.ArgumentTypeError(f"{name!r}: use only letters, digits, '_', '.' and '-'")
    return name


def trainset_settings(config: dict) -> dict[str, Any]:
    """[trainset] (conf/defaults.toml says what each setting means; load_config checked keys and types), converted.
    min_score applies to a pair's average score: the expected score in logprob mode, the mean of the sampled
    ratings in generate mode; max_eval_overlap above 1.0 turns decontamination off."""
    values = config["trainset"]
    settings = {"min_score": float(values["min_score"]), "max_eval_overlap": float(values["max_eval_overlap"]),
                "ngram": int(values["ngram"]), "seed_upsample": int(values["seed_upsample"]),
                "mode": str(values["mode"]), "scorer_model": str(values["scorer_model"]),
                "backward_model": str(values["backward_model"]),
                "include_constrained": as_bool("trainset.include_constrained", values["include_constrained"])}
    if settings["ngram"] < 1 or settings["seed_upsample"] < 1:
        raise StageError("trainset.ngram and trainset.seed_upsample must be at least 1")
    if settings["max_eval_overlap"] <= 0:
        raise StageError("trainset.max_eval_overlap must be above 0 (above 1.0 turns decontamination off)")
    if settings["mode"] not in ("", *MODES):
        raise StageError(f"trainset.mode {settings['mode']!r}: expected one of {', '.join(MODES)} (or \"\")")
    return settings


def check_settings(ctx: Context, args: argparse.Namespace) -> None:
    trainset_settings(ctx.config)


def as_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if str(value).strip().lower() in ("true", "1", "yes"):
        return True
    if str(value).strip().lower() in ("false", "0", "no"):
        return False
    raise StageError(f"{name} {value!r}: expected true or false")


def eval_prompts_path(args: argparse.Namespace, config: dict) -> Path:
    """The evaluation prompts: one setting (evaluate.prompts) for decontamination and for evaluation."""
    from humpback.evaluation.alpaca import DEFAULT_EVAL_PROMPTS

    return Path(args.eval_prompts or config.get("evaluate", {}).get("prompts") or DEFAULT_EVAL_PROMPTS)


def pinned(ref: str, stored: set[str]) -> str:
    """A value as stored in the tables: as given when the tables hold it, else the model resolved and pinned."""
    if ref in stored:
        return ref
    from humpback.models import resolve_model, stable_model_ref

    try:
        return stable_model_ref(resolve_model(ref))
    except Exception as error:  # noqa: BLE001 - an unknown model is the user's error: one line
        known = ", ".join(sorted(stored)) or "none"
        raise StageError(f"{ref!r} is neither a stored value ({known}) nor a model that resolves: {error}") from None


def choose_ratings(choices: list[dict], iteration: int, scorer: str | None, mode: str | None,
                   backward_model: str) -> dict[str, str]:
    """The one (scorer_model, mode) of the iteration's ratings of `backward_model`'s instructions that matches what
    was named; a StageError listing what exists when none or several do."""
    def describe(rows):
        return "; ".join(f"--scorer {row['scorer_model']} --mode {row['mode']} --backward-model "
                         f"{row['backward_model']} ({row['n']} ratings)" for row in rows) or "none"

    matching = [row for row in choices if row["backward_model"] == backward_model
                and (scorer is None or row["scorer_model"] == scorer) and (mode is None or row["mode"] == mode)]
    if len(matching) == 1:
        return {"scorer_model": matching[0]["scorer_model"], "mode": matching[0]["mode"]}
    named = ", ".join(part for part in (f"scorer {scorer}" if scorer else "", f"mode {mode}" if mode else "",
                                        f"backward model {backward_model}") if part)
    if not matching:
        raise StageError(f"iteration {iteration} has no ratings for {named}; it has: {describe(choices)}")
    raise StageError(f"iteration {iteration} has ratings from {len(matching)} scorer/mode choices for {named}: "
                     f"name one with {describe(matching)}")


def rating_lineage(spark, args: argparse.Namespace, config: dict, settings: dict) -> dict[str, str]:
    """{scorer_model, mode, backward_model}: the one scorer, rating mode and backward model of the set."""
    from humpback.sqlfiles import query_with_params

    choices = [row.asDict() for row in query_with_params(spark, RATING_CHOICES_QUERY,
                                                         {"iteration": args.iteration}).collect()]
    backward_ref = args.backward_model or settings["backward_model"] or config["augment"]["model"]
    backward_model = pinned(backward_ref, {row["backward_model"] for row in choices if row["backward_model"]})
    scorer_ref = args.scorer or settings["scorer_model"] or None
    scorer = pinned(scorer_ref, {row["scorer_model"] for row in choices}) if scorer_ref else None
    chosen = choose_ratings(choices, args.iteration, scorer, args.mode or settings["mode"] or None, backward_model)
    return {**chosen, "backward_model": backward_model}


def curated_pairs_params(iteration: int, lineage: dict[str, str], settings: dict) -> dict[str, Any]:
    return {"iteration": iteration, "scorer_model": lineage["scorer_model"], "mode": lineage["mode"],
            "backward_model": lineage["backward_model"], "min_score": settings["min_score"],
            "include_constrained": settings["include_constrained"], "max_eval_overlap": settings["max_eval_overlap"]}


def training_set_params(name: str, iteration: int, lineage: dict[str, str], settings: dict) -> dict[str, Any]:
    from humpback.prompts import SEED_TAG, WEB_TAG

    return {"set_name": name, "iteration": iteration, "seed_upsample": settings["seed_upsample"],
            "seed_tag": SEED_TAG, "web_tag": WEB_TAG, "scorer_model": lineage["scorer_model"],
            "rating_mode": lineage["mode"], "backward_model": lineage["backward_model"],
            "max_eval_overlap": settings["max_eval_overlap"]}


def choose_rewriter(spark, named: str | None, prompt_version: str) -> str:
    """The one rewriter (a pinned rewrites.rewriter_model) whose rewrites under the current rewrite prompt a
    rewritten set takes: the one named, else the only one there is; a StageError listing them otherwise."""
    from humpback.sqlfiles import query_with_params

    choices = {row["rewriter_model"]: int(row["n"]) for row in
               query_with_params(spark, REWRITER_CHOICES_QUERY, {"prompt_version": prompt_version}).collect()}
    listed = "; ".join(f"--rewriter {model} ({n} rewrites)" for model, n in sorted(choices.items())) or "none"
    if named:
        rewriter = pinned(named, set(choices))
        if rewriter not in choices:
            raise StageError(f"no rewrites by {rewriter} under rewrite prompt {prompt_version} (run `humpback "
                             f"rewrite --iteration K --model {named}` first); there are: {listed}")
        return rewriter
    if len(choices) == 1:
        return next(iter(choices))
    if not choices:
        raise StageError(f"`rewrites` holds no rewrites under the current rewrite prompt {prompt_version}: run "
                         "`humpback rewrite --iteration K` first")
    raise StageError(f"rewrites by {len(choices)} rewriters under rewrite prompt {prompt_version}: name one with "
                     f"{listed}")


def rewritten_pairs_params(lineage: dict[str, str], rewriter: str, prompt_version: str,
                           settings: dict) -> dict[str, Any]:
    return {"backward_model": lineage["backward_model"], "rewriter_model": rewriter,
            "prompt_version": prompt_version, "max_eval_overlap": settings["max_eval_overlap"]}


def rewrite_status_counts(frame) -> dict[str, int]:
    """{status: pairs} over REWRITE_STATUSES for sql/rewritten_pairs.sql's output."""
    counts = {row["rewrite_status"]: int(row["count"]) for row in frame.groupBy("rewrite_status").count().collect()}
    return {status: counts.get(status, 0) for status in REWRITE_STATUSES}


def register_decontamination(spark, path: Path, n: int) -> int:
    """The SQL function `eval_overlap(text)` against the evaluation prompts; returns how many prompts."""
    from humpback.decontamination import build_index, register_eval_overlap
    from humpback.evaluation.alpaca import read_prompts

    prompts = read_prompts(path)
    register_eval_overlap(spark, build_index((prompt.instruction for prompt in prompts), n))
    return len(prompts)


def source_counts(frame) -> dict[str, int]:
    counts = {row["source"]: int(row["count"]) for row in frame.groupBy("source").count().collect()}
    return {"seed": counts.get("seed", 0), "augmented": counts.get("augmented", 0)}


def empty_set_message(name: str, iteration: int, settings: dict, rated: int) -> str:
    return (f"training set {name!r} would be empty: the seed table has no usable rows and none of the {rated} pairs "
            f"rated in iteration {iteration} passed min_score {settings['min_score']:g} and the other filters; "
            "nothing written")


def materialize(frame, lakehouse, name: str, metadata: dict) -> int:
    """Replace the set's rows in one commit (a new table version); the version is returned."""
    frame.write.format("delta").mode("overwrite") \
        .option("replaceWhere", f"set_name = '{name}'").option("mergeSchema", "true") \
        .option("userMetadata", json.dumps(metadata, sort_keys=True)) \
        .save(lakehouse.path(TABLE))
    return lakehouse.version(TABLE)


def example_lengths(frame) -> list[tuple[str, int, int]]:
    """(source, instruction chars, output chars) for every row; sets are small enough to collect."""
    from pyspark.sql import functions as F

    rows = frame.select("source", F.length("instruction"), F.length("output")).collect()
    return [(row[0], int(row[1]), int(row[2])) for row in rows]


def length_statistics(lengths: list[tuple[str, int, int]]) -> list[dict]:
    """Per source and for all rows: n, and mean and sample std of the instruction and output lengths in
    characters, as in the paper's Table 2."""
    groups = {source: [row for row in lengths if row[0] == source] for source in ("seed", "augmented")}
    groups["all"] = lengths
    stats = []
    for source, rows in groups.items():
        entry: dict[str, Any] = {"source": source, "n": len(rows)}
        for index, field in ((1, "instruction"), (2, "output")):
            values = [row[index] for row in rows]
            entry[f"{field}_mean"] = statistics.fmean(values) if values else None
            entry[f"{field}_std"] = statistics.stdev(values) if len(values) > 1 else None
        stats.append(entry)
    return stats


def length_histograms(lengths: list[tuple[str, int, int]]) -> dict[str, dict[str, list[tuple[float, int]]]]:
    """{field: {source: [(bin start, count)]}} for the instruction and output lengths."""
    histograms = {}
    for index, field in ((1, "instruction"), (2, "output")):
        width = LENGTH_BIN_CHARS[field]
        series: dict[str, Counter] = {}
        for row in lengths:
            series.setdefault(row[0], Counter())[row[index] // width * width] += 1
        histograms[field] = {source: sorted((float(start), n) for start, n in bins.items())
                             for source, bins in series.items()}
    return histograms


def format_lengths(stats: list[dict]) -> str:
    from humpback.output import format_table

    def mean_std(row: dict, field: str) -> str:
        mean, std = row[f"{field}_mean"], row[f"{field}_std"]
        if mean is None:
            return "-"
        return f"{mean:.0f} ± {std:.0f}" if std is not None else f"{mean:.0f}"

    rows = [[row["source"], row["n"], mean_std(row, "instruction"), mean_std(row, "output")] for row in stats]
    return "lengths in characters (mean ± std)\n" + format_table(["source", "examples", "instruction", "output"], rows)


def run(ctx: Context, args: argparse.Namespace) -> dict[str, float]:
    from pyspark.sql import functions as F

    from humpback.sqlfiles import load_sql, query_with_params, run_sql

    name = args.name
    settings = trainset_settings(ctx.config)
    spark, lakehouse = ctx.spark, ctx.lakehouse
    lakehouse.register_tables()
    chosen = rating_lineage(spark, args, ctx.config, settings)
    prompts_path = eval_prompts_path(args, ctx.config)
    n_eval_prompts = register_decontamination(spark, prompts_path, settings["ngram"])
    curated_sql, set_sql = load_sql("curated_pairs"), load_sql("training_set")
    output_source = getattr(args, "output_source", None) or "web"
    curated = run_sql(spark, curated_sql, curated_pairs_params(args.iteration, chosen, settings))
    sql_files = [curated_sql, set_sql]
    rewrite_lineage: dict[str, Any] = {}
    if output_source == "rewritten":
        from humpback.prompts import REWRITE_TEMPLATE_VERSION

        if not lakehouse.exists("rewrites"):
            raise StageError(f"no `rewrites` table in {lakehouse.root}: run `humpback rewrite --iteration "
                             f"{args.iteration}` first")
        rewriter = choose_rewriter(spark, getattr(args, "rewriter", None), REWRITE_TEMPLATE_VERSION)
        rewritten_sql = load_sql("rewritten_pairs")
        sql_files.append(rewritten_sql)
        curated.createOrReplaceTempView("web_curated_pairs")
        judged = run_sql(spark, rewritten_sql,
                         rewritten_pairs_params(chosen, rewriter, REWRITE_TEMPLATE_VERSION, settings))
        rewrite_lineage = {"rewriter_model": rewriter, "rewrite_prompt_version": REWRITE_TEMPLATE_VERSION,
                           "rewrite_counts": rewrite_status_counts(judged)}
        curated = judged.where("rewrite_status = 'ok'").select("segment_id", "instruction", "output", "score",
                                                               "n_ratings")
    curated.createOrReplaceTempView("curated_pairs")
    training_set = run_sql(spark, set_sql, training_set_params(name, args.iteration, chosen, settings))

    rating_params = {"iteration": args.iteration, "scorer_model": chosen["scorer_model"], "mode": chosen["mode"],
                     "backward_model": chosen["backward_model"]}
    rated_row = query_with_params(spark, RATED_PAIRS_QUERY, rating_params).first()
    rated, constrained = int(rated_row["rated"]), int(rated_row["constrained"])
    seed_dropped = int(query_with_params(spark, SEED_DECONTAMINATED_QUERY,
                                         {"max_eval_overlap": settings["max_eval_overlap"]}).first()["n"])
    counts = source_counts(training_set)
    if not sum(counts.values()):
        raise StageError(empty_set_message(name, args.iteration, settings, rated))
    lineage = {"set_name": name, "iteration": args.iteration, "settings": settings, **chosen,
               "eval_prompts": str(prompts_path), "eval_prompts_sha256": file_sha256(prompts_path),
               "n_eval_prompts": n_eval_prompts, "constrained_ratings": constrained,
               "seed_decontaminated": seed_dropped, "output_source": output_source, **rewrite_lineage,
               "sql_sha256": {sql.path.name: sql.sha256 for sql in sql_files}}
    version = materialize(training_set, lakehouse, name, {"stage": "trainset", **lineage})
    stored = lakehouse.read(TABLE, version).where(F.col("set_name") == name)
    lengths = example_lengths(stored)
    return report(ctx, lineage, version, counts, rated, length_statistics(lengths), length_histograms(lengths))


def report(ctx: Context, lineage: dict, version: int, counts: dict, rated: int, stats: list[dict],
           histograms: dict) -> dict[str, float]:
    """Print the set's size, acceptance rate and lengths; log them with the lineage to an MLflow run."""
    name, iteration = lineage["set_name"], lineage["iteration"]
    acceptance = counts["augmented"] / rated if rated else math.nan
    print(f"trainset: {name!r} (iteration {iteration}) -> {ctx.lakehouse.path(TABLE)} version {version}")
    print(f"trainset: ratings by {lineage['scorer_model']} ({lineage['mode']} mode) of the instructions of "
          f"{lineage['backward_model']}")
    if lineage["constrained_ratings"]:
        verb = "included" if lineage["settings"]["include_constrained"] else "left out"
        print(f"trainset: {lineage['constrained_ratings']} of {rated} ratings took their score from the constrained "
              f"fallback and were {verb} (trainset.include_constrained = "
              f"{str(lineage['settings']['include_constrained']).lower()})")
    if lineage["seed_decontaminated"]:
        print(f"trainset: {lineage['seed_decontaminated']} seed pairs overlap the evaluation prompts and were left out")
    if lineage.get("output_source") == "rewritten":
        rewrites = lineage["rewrite_counts"]
        left_out = sum(rewrites.values()) - rewrites["ok"]
        print(f"trainset: outputs rewritten by {lineage['rewriter_model']} (rewrite prompt "
              f"{lineage['rewrite_prompt_version']}): {rewrites['ok']} of {sum(rewrites.values())} curated pairs have a "
              f"usable rewrite; {left_out} left out ({rewrites['flagged']} flagged, {rewrites['missing']} not "
              f"rewritten, {rewrites['error']} failed, {rewrites['decontaminated']} overlapping the evaluation "
              "prompts)")
    print(f"trainset: {sum(counts.values())} examples: {counts['seed']} seed, {counts['augmented']} augmented; "
          f"accepted {counts['augmented']} of {rated} rated pairs"
          + (f" ({100 * acceptance:.1f}%)" if rated else ""))
    if not counts["augmented"]:
        why = ("no curated pair has a usable rewrite" if lineage.get("output_source") == "rewritten"
               else "no curated pairs passed the filters")
        print(f"trainset: warning: {why}; {name!r} holds seed rows only")
    print(format_lengths(stats))
    for file, digest in lineage["sql_sha256"].items():
        print(f"trainset: {file} sha256 {digest}")
    return log_to_mlflow(ctx, lineage, version, counts, rated, acceptance, stats, histograms)


def log_to_mlflow(ctx: Context, lineage: dict, version: int, counts: dict, rated: int, acceptance: float,
                  stats: list[dict], histograms: dict) -> dict[str, float]:
    """Log the lineage and plots to the stage's MLflow run; return the metrics."""
    import tempfile

    import mlflow

    from humpback import reporting

    name = lineage["set_name"]
    params = {f"trainset.{key}": value for key, value in lineage["settings"].items()}
    params.update({
        "trainset.name": name, "trainset.iteration": lineage["iteration"],
        "trainset.scorer_model": lineage["scorer_model"], "trainset.rating_mode": lineage["mode"],
        "trainset.backward_model": lineage["backward_model"],
        "trainset.eval_prompts": lineage["eval_prompts"], "trainset.eval_prompts_sha256": lineage["eval_prompts_sha256"],
        **{f"trainset.{file.removesuffix('.sql')}_sql_sha256": digest for file, digest in lineage["sql_sha256"].items()},
        "delta.path": ctx.lakehouse.path(TABLE), "delta.version": version,
        "trainset.output_source": lineage.get("output_source", "web"),
    })
    metrics = {"examples": sum(counts.values()), "seed": counts["seed"], "augmented": counts["augmented"],
               "rated": rated, "acceptance_rate": acceptance, "n_eval_prompts": lineage["n_eval_prompts"],
               "constrained_ratings": lineage["constrained_ratings"],
               "seed_decontaminated": lineage["seed_decontaminated"]}
    if lineage.get("output_source") == "rewritten":
        params.update({"trainset.rewriter_model": lineage["rewriter_model"],
                       "trainset.rewrite_prompt_version": lineage["rewrite_prompt_version"]})
        rewrites = lineage["rewrite_counts"]
        metrics.update({f"rewrites.{status}": n for status, n in rewrites.items()})
        metrics["rewrites.left_out"] = sum(rewrites.values()) - rewrites["ok"]
    for row in stats:
        for field in ("instruction", "output"):
            for statistic in ("mean", "std"):
                if row[f"{field}_{statistic}"] is not None:
                    metrics[f"{field}_chars_{statistic}.{row['source']}"] = row[f"{field}_{statistic}"]
    mlflow.set_tags({"humpback.trainset": name, "humpback.trainset_version": str(version),
                     "humpback.output_source": lineage.get("output_source", "web")})
    mlflow.log_params(params)
    with tempfile.TemporaryDirectory() as tmp:
        for field, series in histograms.items():
            plot = reporting.histogram_plot(series, f"{name}: {field} lengths (characters)", "characters",
                                            f"{tmp}/{field}_lengths.png", LENGTH_BIN_CHARS[field])
            mlflow.log_artifact(str(plot))
    return metrics


STAGE = Stage("trainset", "Materialize a new version of `training_sets` from seed and curated pairs.", run, options,
              reads=("seed", "ratings", "candidates", "segments"), writes=("training_sets",),
              settings=("trainset",), run_name=lambda ctx, args: f"trainset-{args.name}", check=check_settings)
