"""`humpback curate`: a forward model rates every (instruction, segment) pair on the paper's rubric -> `ratings`.

generate (the paper's way): brief reasoning, then `Score: N`, parsed by humpback.parse_rating. The score line is
guided, as vLLM's guided decoding or an OpenAI-style structured output would do it: when a sample has no valid
score line, its own reasoning is kept, "Score:" is appended and the score is the most likely of 1..5 in the model's
next-token distribution (score_source 'constrained'). All such samples of a batch go to the engine in one call, and
`raw_parse_status` keeps what the free text alone gave, so unguided parse failures stay measurable.
logprob: one forward pass with the reply prefilled up to "Score:"; the probabilities of 1..5 are stored in
score_probs and their expected value is the score (which gives the paper's 4.5 threshold a meaning).
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

from humpback.tables import TABLES
from pipelines.common import Context, StageError, run_stage, stage_parser

KEYS = TABLES["ratings"].keys
RATING_COLUMNS = TABLES["ratings"].columns


def build_parser() -> argparse.ArgumentParser:
    parser = stage_parser("curate", "Rate (instruction, segment) pairs with a forward model into `ratings`.")
    parser.add_argument("--iteration", type=int, required=True, help="1 rates with M0, 2 with M1, ...")
    parser.add_argument("--scorer", default=None, help="forward model (default: config curate.scorer, else M(K-1): "
                                                       "models:/humpback-forward@m{K-1})")
    parser.add_argument("--mode", choices=("generate", "logprob"), default=None,
                        help="generate: reasoning then 'Score: N' (the paper); logprob: expected score in one pass")
    parser.add_argument("--limit", type=int, default=None, help="only the first N candidates (by segment_id)")
    parser.add_argument("--backward-model", default=None,
                        help="rate the candidates of this backward model (default: config augment.model)")
    parser.add_argument("--engine", choices=("transformers", "vllm", "openai"), default=None)
    return parser


def rating_request(instruction: str, output: str, assistant_prefix: str = "", seed: int | None = None):
    from humpback.inference.base import Request
    from humpback.prompts import SEED_TAG, rating_prompt

    # M0 learned the assistant's voice under the seed tag, so the rubric is asked in that voice.
    messages = ({"role": "system", "content": SEED_TAG}, {"role": "user", "content": rating_prompt(instruction, output)})
    return Request(messages=messages, assistant_prefix=assistant_prefix, seed=seed)


def reasoning_before_score(text: str) -> str:
    """The sample's text up to (not including) its last 'Score' mention: the reasoning to complete."""
    lowered = text.lower()
    cut = lowered.rfind("score")
    return (text[:cut] if cut >= 0 else text).rstrip()


def guided_scores(engine, pending: list[tuple[str, str, str]]) -> list[tuple[str, str | None]]:
    """(completed text, error) for each (instruction, output, reasoning): the reasoning, then 'Score: N' with N the
    most likely of 1..5 after 'Score:'. One batched engine call for all of them."""
    from humpback.prompts import SCORE_PREFIX, SCORE_TOKENS

    if not pending:
        return []
    prefixes = [f"{reasoning}\n{SCORE_PREFIX}" if reasoning else SCORE_PREFIX for _, _, reasoning in pending]
    requests = [rating_request(instruction, output, prefix)
                for (instruction, output, _), prefix in zip(pending, prefixes)]
    out = []
    for prefix, scores in zip(prefixes, engine.next_token_probs(requests, SCORE_TOKENS)):
        if scores.error:
            out.append((f"{prefix} ", scores.error))
        else:
            out.append((f"{prefix} {max(scores.probs, key=scores.probs.get)}", None))
    return out


def pair_key(segment_id: str, instruction_hash: str) -> str:
    """The key a rated pair's sampling seed is derived from."""
    return f"{segment_id}\x00{instruction_hash}"


def generate_handler(sampling: dict[str, Any], lineage: dict[str, Any]):
    """Each pair samples with its own seed (a hash of the run's seed and the pair's key), recorded in `seed`."""

    def handle(rows: list[dict], engine) -> list[dict]:
        import json

        from humpback.inference.base import Sampling
        from humpback.inference.rating import OK, aggregate_samples, parse_rating
        from humpback.inference.seeding import row_seed

        seeds = [row_seed(sampling["seed"], pair_key(row["segment_id"], row["instruction_hash"])) for row in rows]
        requests = [rating_request(row["instruction"], row["text"], seed=seed) for row, seed in zip(rows, seeds)]
        generations = engine.generate(requests, Sampling(**sampling))
        # Only the generated continuation is parsed, never the prompt; samples without a valid score line get
        # theirs from the guided step below.
        raw = [[parse_rating(text)[1] for text in generation.texts] for generation in generations]
        pending = [(i, j) for i, statuses in enumerate(raw) for j, status in enumerate(statuses) if status != OK]
        guided = dict(zip(pending, guided_scores(engine, [
            (rows[i]["instruction"], rows[i]["text"], reasoning_before_score(generations[i].texts[j]))
            for i, j in pending])))
        out = []
        for i, (row, generation) in enumerate(zip(rows, generations)):
            base = {"segment_id": row["segment_id"], "instruction_hash": row["instruction_hash"], **lineage,
                    "prompt_tokens": generation.prompt_tokens, "completion_tokens": generation.completion_tokens,
                    "n_samples": len(generation.texts), "seed": seeds[i],
                    "sampling": json.dumps({**sampling, "run_seed": sampling["seed"], "seed": seeds[i]},
                                           sort_keys=True)}
            if generation.error:
                out.append({**base, "status": "error", "error": generation.error, "parse_status": "missing",
                            "raw_parse_status": "missing"})
                continue
            texts = [guided[(i, j)][0] if (i, j) in guided else text for j, text in enumerate(generation.texts)]
            errors = [guided[(i, j)][1] for j in range(len(texts)) if (i, j) in guided and guided[(i, j)][1]]
            score, status = aggregate_samples([parse_rating(text) for text in texts])
            out.append({**base, "score": score, "parse_status": status,
                        "raw_parse_status": OK if OK in raw[i] else raw[i][-1],
                        "score_source": "parsed" if all(s == OK for s in raw[i]) else "constrained",
                        "rationale": "\n---\n".join(texts), "status": "ok" if score is not None else "error",
                        "error": None if score is not None else (errors[0] if errors else "no score could be read")})
        return out

    return handle


def logprob_handler(lineage: dict[str, Any]):
    def handle(rows: list[dict], engine) -> list[dict]:
        from humpback.inference.rating import expected_score
        from humpback.prompts import SCORE_PREFIX, SCORE_TOKENS

        requests = [rating_request(row["instruction"], row["text"], SCORE_PREFIX) for row in rows]
        out = []
        for row, scores in zip(rows, engine.next_token_probs(requests, SCORE_TOKENS)):
            ok = scores.error is None
            out.append({"segment_id": row["segment_id"], "instruction_hash": row["instruction_hash"], **lineage,
                        "score": expected_score(scores.probs) if ok else None,
                        "score_probs": scores.probs if ok else None, "parse_status": "ok" if ok else "missing",
                        "raw_parse_status": "ok" if ok else "missing", "score_source": "logprob", "n_samples": 1,
                        "status": "ok" if ok else "error", "error": scores.error,
                        "prompt_tokens": scores.prompt_tokens, "completion_tokens": 0, "seed": None,
                        "sampling": None})
        return out

    return handle


def default_scorer(iteration: int) -> str:
    """Iteration K is rated by the model of iteration K-1 (M0 for K = 1), as in the paper."""
    if iteration < 1:
        raise StageError(f"--iteration {iteration}: iterations start at 1 (iteration K is rated by M(K-1))")
    return f"models:/humpback-forward@m{iteration - 1}"


def run(ctx: Context, args: argparse.Namespace) -> int:
    from pyspark.sql import functions as F

    from humpback.inference.spark_adapter import InferencePlan, engine_spec, plan_settings, run_inference
    from humpback.models import resolve_model, stable_model_ref
    from humpback.prompts import RATING_TEMPLATE_VERSION
    from humpback.tracking import start_run

    settings = ctx.config["curate"]
    lakehouse = ctx.lakehouse
    mode = args.mode or settings["mode"]
    for table, hint in (("candidates", "humpback augment"), ("segments", "humpback segment")):
        if not lakehouse.exists(table):
            raise StageError(f"no `{table}` table in {lakehouse.root}: run `{hint}` first")
    ctx.mlflow_uri  # noqa: B018 - model references may point at the registry
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
        sampling = {"temperature": float(settings["temperature"]), "top_p": float(settings["top_p"]),
                    "max_new_tokens": int(settings["max_new_tokens"]), "seed": int(settings["seed"]),
                    "n": int(settings["samples"])}
        handler = generate_handler(sampling, lineage)
    else:
        sampling = {}
        handler = logprob_handler(lineage)
    plan = InferencePlan(stage="curate", table="ratings", keys=KEYS, output_columns=RATING_COLUMNS,
                         spec=engine_spec(ctx.config, scorer_uri, args.engine), handler=handler,
                         **plan_settings(ctx.config))
    print(f"curate: iteration {args.iteration}, scorer {scorer_uri} ({scorer_model}), mode {mode}, "
          f"candidates of {backward_model}")
    with start_run(f"curate-{args.iteration}-{mode}", ctx.config, stage="curate"):
        import mlflow

        mlflow.log_params({"iteration": args.iteration, "scorer_uri": scorer_uri, "scorer_model": scorer_model,
                           "mode": mode, "backward_model": backward_model, "prompt_version": RATING_TEMPLATE_VERSION,
                           "engine": plan.spec.kind, **{f"sampling.{k}": v for k, v in sampling.items()}})
        stats = run_inference(lakehouse, todo, plan)
        report(lakehouse, lineage, stats)
    return 0


def report(lakehouse, lineage: dict[str, Any], stats) -> None:
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
    mlflow.log_metrics({k: float(v) for k, v in metrics.items()})
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


def main(argv: list[str] | None = None) -> int:
    return run_stage(build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
