"""Speed of batch inference and rating, side by side in one run (issue 5, "Speed").

  1. Spark adapter overhead: the augment handler through Spark (local session, one partition, mapInArrow via
     humpback.inference.spark_adapter.map_rows) against the same handler and engine called directly in this
     process, on the same segments: tokens/s ratio (target >= 0.9).
  2. Logprob against generate rating, each at its best (batched; logprob with the rubric's prefix cache, generate
     with curate's sampling settings and its guided score line), on the same pairs: pairs/s ratio (target >= 3
     on CPU), and the Spearman rank correlation between the two modes' scores.
  3. The transformers engine batched (--decode-batch-size, 16) against one prompt at a time (batch_size 1),
     greedy, on the same decode-heavy prompts: generated tokens/s ratio (target >= 4).
  4. Generate mode's parse-failure rate on those pairs as curate runs it, with its guided score line (target
     < 5%), and beside it how often the free text alone had no valid score line.
  5. vLLM (its CPU build here; issue 13) against the transformers engine, both called directly on the same
     segments: augment-style generation (the augment handler, [augment] sampling, per-row seeds), generated
     tokens/s (target >= 2); each engine's start-up time is printed beside it. vLLM's prefix cache is emptied
     before every round of 5, 6 and 7 (on the Spark side too, in the worker), so no round finds the previous
     round's prompts cached.
  6. The same two engines on logprob rating (the logprob handler on the pairs of 2): pairs/s, reported, with
     how far apart the two engines' scores are (they read the same probabilities).
  7. Spark adapter overhead with vLLM: the augment handler through Spark against the same vLLM engine settings
     called directly (target >= 0.9). Never two vLLM engines at once, so the sides cannot alternate round by
     round: the direct side runs, its engine is closed, the Spark worker builds its own and runs, Spark stops,
     and a fresh direct engine runs again; the direct rate is the median of the rounds before and after. From 5
     and 6 the script prints the job size at which vLLM's start-up pays for itself (the `auto` engine's
     threshold, vllm_min_rows).

    .venv/bin/python benchmarks/bench_inference.py [--segments 6] [--pairs 16] [--prompts 16] [--batch-size 8]
                                                   [--decode-batch-size 16]
                                                   [--repeats 2] [--threads 1] [--max-new-tokens N] [--model REF]
                                                   [--vllm-segments 16] [--no-vllm | --only-vllm]

Every comparison uses the same torch thread count on both sides (the Spark side: one partition whose engine gets
`cpu_threads` = --threads). Model loading, the JVM and session start-up are done before any clock starts: each
side first runs a small warm-up batch. Sides alternate, the order flipping each round (A, B, B, A, ...), and
each side's median rate counts, so load from other processes on a shared machine hits both sides alike.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parent.parent
SAMPLE_WARC = REPO / "data" / "sample" / "python-docs.warc.gz"
SEED = REPO / "data" / "sample" / "seed.jsonl"

TARGET_SPARK_RATIO, TARGET_LOGPROB_RATIO, TARGET_BATCH_RATIO, TARGET_PARSE_FAILURES = 0.9, 3.0, 4.0, 0.05
TARGET_VLLM_GENERATION_RATIO = 2.0
SINGLE = 1
# Rating pairs keep seed answers no longer than this, so a pass over the pairs fits the time budget on 2 cores.
MAX_SEED_OUTPUT_CHARS = 1000
LINEAGE_AUGMENT = {"backward_model": "bench", "model_uri": "bench", "model_version": "", "prompt_version": "bench"}
LINEAGE_CURATE = {"iteration": 1, "scorer_model": "bench", "scorer_uri": "bench", "backward_model": "bench",
                  "prompt_version": "bench"}


@dataclass
class Measured:
    rate: float  # median over the rounds
    output: list  # of the first run (the runs are deterministic: same seed, same batches)
    rates: list[float] = field(default_factory=list)  # every round's


@dataclass
class Result:
    """One line of the final table."""

    measure: str
    ours: str
    baseline: str
    ratio: float | None
    target: str
    passed: bool | None  # None: reported, no target


# ---------------------------------------------------------------- inputs

def kept_segments(limit: int) -> list[dict]:
    """The `limit` shortest distinct segments of the sample WARC that pass the drop rules, as (segment_id, text).

    Shortest on purpose for the Spark comparison: the least model work per row, so Spark's own costs weigh most.
    """
    from humpback.quality.rules import drop_reason
    from humpback.quality.signals import compute_signals
    from humpback.web.segment import segment_html
    from humpback.web.warc import iter_warc

    texts = set()
    for page in iter_warc(SAMPLE_WARC, SAMPLE_WARC.name):
        if page["kind"] != "page":
            continue
        for segment in segment_html(page["html"]):
            if drop_reason(compute_signals(segment.header, segment.text, segment.level)) is None:
                texts.add(segment.text)
    return [{"segment_id": text_id(text), "text": text} for text in sorted(texts, key=lambda t: (len(t), t))[:limit]]


def text_id(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def seed_pairs() -> list[dict]:
    return [json.loads(line) for line in SEED.read_text(encoding="utf-8").splitlines() if line.strip()]


def rating_pairs(seed: list[dict], segments: list[dict], n: int) -> list[dict]:
    """n curate rows: seed instructions with their own answer, alternating with a seed instruction over an
    unrelated sample segment (a poor answer), so the scores spread over the scale and rank correlation means
    something."""
    from humpback.ids import instruction_hash

    short = [pair for pair in seed if len(pair["output"]) <= MAX_SEED_OUTPUT_CHARS]
    rows = []
    for i in range(n):
        pair = short[i % len(short)]
        text = pair["output"] if i % 2 == 0 else segments[i % len(segments)]["text"]
        rows.append({"segment_id": f"pair-{i}", "instruction": pair["instruction"],
                     "instruction_hash": instruction_hash(pair["instruction"]), "text": text, "matched": i % 2 == 0})
    return rows


def answer_requests(seed: list[dict], n: int) -> list:
    """Forward prompts (seed tag + seed instruction): short prompts and long answers, where decoding dominates."""
    from humpback.inference.base import Request
    from humpback.prompts import SEED_TAG
    from humpback.training.sft import build_messages

    return [Request(messages=tuple(build_messages(pair["instruction"], "", "forward", SEED_TAG)[0]))
            for pair in seed[:n]]


# ---------------------------------------------------------------- measuring

def timed(run: Callable[[], list]) -> tuple[float, list]:
    start = time.perf_counter()
    out = run()
    return time.perf_counter() - start, out


def alternate(sides: dict[str, Callable[[], list]], repeats: int, amount: Callable[[list], float],
              unit: str) -> dict[str, Measured]:
    """`repeats` rounds of the sides, the order flipping each round (A, B, B, A, ...) so drift in the machine's
    load evens out; per side the median rate (amount/s)."""
    rates: dict[str, list[float]] = {name: [] for name in sides}
    outputs: dict[str, list] = {}
    for round_no in range(1, repeats + 1):
        for name in list(sides) if round_no % 2 else list(reversed(sides)):
            seconds, out = timed(sides[name])
            rates[name].append(amount(out) / seconds)
            outputs.setdefault(name, out)
            print(f"  round {round_no} {name:<10} {seconds:7.1f} s  {rates[name][-1]:8.2f} {unit}", flush=True)
    return {name: Measured(statistics.median(rates[name]), outputs[name], rates[name]) for name in sides}


def token_count(rows: list[dict]) -> int:
    return sum((row["prompt_tokens"] or 0) + (row["completion_tokens"] or 0) for row in rows)


def ratio_result(measure: str, ours: float, baseline: float, unit: str, target: float) -> Result:
    ratio = ours / baseline if baseline else float("nan")
    return Result(measure, f"{ours:.2f} {unit}", f"{baseline:.2f} {unit}", ratio, f">= {target:g}", ratio >= target)


# ---------------------------------------------------------------- 1. Spark adapter overhead

def start_spark(config: dict):
    from humpback.spark import get_spark

    # One task slot: the inference runs in one Python worker, as the direct side runs in this process.
    return get_spark({**config["spark"], "local_master": "local[1]"}, app_name="bench-inference")


def spark_overhead(spark, engine, spec, segments: list[dict], sampling: dict, repeats: int) -> Result:
    from humpback.inference.spark_adapter import map_rows
    from humpback.stages.augment import CANDIDATE_COLUMNS, augment_task
    from humpback.tables import ddl

    handler = augment_task(sampling, LINEAGE_AUGMENT, {"min_chars": 10, "max_chars": 1000})
    frame = spark.createDataFrame(segments, "segment_id string, text string").coalesce(1)
    worker = map_rows(spec, handler, CANDIDATE_COLUMNS)

    def through_spark(rows_frame) -> list[dict]:
        return [row.asDict() for row in rows_frame.mapInArrow(worker, ddl(CANDIDATE_COLUMNS)).collect()]

    handler(segments[:2], engine)  # warm-up: this process's engine
    through_spark(frame.limit(2))  # warm-up: the Spark worker loads its engine (reused by later tasks)
    measured = alternate({"direct": lambda: handler(segments, engine), "spark": lambda: through_spark(frame)},
                         repeats, token_count, "tokens/s")
    spark_out, direct_out = measured["spark"].output, measured["direct"].output
    same = sorted((r["segment_id"], r["instruction"]) for r in spark_out) == \
        sorted((r["segment_id"], r["instruction"]) for r in direct_out)
    print(f"  {len(segments)} segments, {token_count(direct_out)} tokens per pass; "
          f"same instructions on both sides: {'yes' if same else 'NO'}")
    return ratio_result("1. Spark adapter (augment) tokens/s", measured["spark"].rate, measured["direct"].rate,
                        "tok/s", TARGET_SPARK_RATIO)


# ---------------------------------------------------------------- 2 and 4. logprob vs generate rating

def rating_modes(engine, pairs: list[dict], sampling: dict, repeats: int) -> tuple[list[Result], list[Result]]:
    """(speed and rank correlation, parse-failure rates)."""
    from humpback.stages.curate import generate_task, logprob_task

    generate = generate_task(sampling, {**LINEAGE_CURATE, "mode": "generate"})
    logprob = logprob_task({**LINEAGE_CURATE, "mode": "logprob"})
    logprob(pairs[:2], engine)  # warm-up; also builds the rubric's prefix cache, as a worker's first batch does
    # warm-up on a few tokens: no score line, so the guided score step is warmed up too
    generate_task({**sampling, "max_new_tokens": 8}, {**LINEAGE_CURATE, "mode": "generate"})(pairs[:1], engine)
    measured = alternate({"logprob": lambda: logprob(pairs, engine), "generate": lambda: generate(pairs, engine)},
                         repeats, len, "pairs/s")
    generated, scored = measured["generate"].output, measured["logprob"].output
    print_score_agreement(pairs, generated, scored)
    return ([ratio_result("2. logprob vs generate rating pairs/s", measured["logprob"].rate,
                          measured["generate"].rate, "pairs/s", TARGET_LOGPROB_RATIO),
             spearman_result(generated, scored)],
            parse_failure_results(generated, sampling["n"]))


def print_score_agreement(pairs: list[dict], generated: list[dict], scored: list[dict]) -> None:
    """Mean score of matched and mismatched pairs in each mode: a scorer that tells them apart ranks them apart."""
    matched = {pair["segment_id"]: pair["matched"] for pair in pairs}
    for mode, rows in (("generate", generated), ("logprob", scored)):
        means = {kind: statistics.fmean([r["score"] for r in rows if r["score"] is not None
                                         and matched[r["segment_id"]] == kind] or [float("nan")])
                 for kind in (True, False)}
        print(f"  {mode:<8} mean score: seed answer {means[True]:.2f}, unrelated segment {means[False]:.2f}")


def spearman_result(generated: list[dict], scored: list[dict]) -> Result:
    from scipy.stats import spearmanr

    by_id = {row["segment_id"]: row["score"] for row in scored}
    both = [(row["score"], by_id[row["segment_id"]]) for row in generated
            if row["score"] is not None and by_id.get(row["segment_id"]) is not None]
    rho = spearmanr([g for g, _ in both], [s for _, s in both]).statistic if len(both) > 2 else float("nan")
    return Result("   Spearman(generate, logprob scores)", f"{rho:.3f}", f"n={len(both)} pairs", None, "reported",
                  None)


def parse_failure_results(generated: list[dict], samples_per_pair: int) -> list[Result]:
    """Generate mode as curate runs it (guided score line): pairs left without a score; and, reported beside it,
    how often the free text alone had no valid 'Score:' line (what an unguided implementation would lose)."""
    total = len(generated)
    unguided = sum(row["raw_parse_status"] != "ok" for row in generated) / total
    failed = sum(row["parse_status"] != "ok" for row in generated) / total
    statuses = {status: sum(row["raw_parse_status"] == status for row in generated)
                for status in ("ok", "missing", "invalid")}
    print(f"  generate, free-text parse status of {total} pairs ({samples_per_pair} sample(s) each): {statuses}")
    print("  curate guides the score line: a sample whose free text has no valid 'Score: N' line (DESIGN.md rule)")
    print("  keeps its reasoning, gets 'Score:' appended and takes the likeliest of 1..5 (score_source")
    print("  'constrained'), as vLLM's guided decoding would; only an engine error then leaves a pair unrated.")
    print("  The free-text rate says whether the model follows the rubric's format by itself.")
    return [Result("4. generate parse failures (guided score line)", f"{100 * failed:.1f}%", "", None,
                   f"< {100 * TARGET_PARSE_FAILURES:g}%", failed < TARGET_PARSE_FAILURES),
            Result("   free text without a valid Score line", f"{100 * unguided:.1f}%", "", None, "reported", None)]


# ---------------------------------------------------------------- 3. batched vs one at a time

def batching_speedup(engine, requests: list, max_new_tokens: int, repeats: int, batch_size: int) -> Result:
    """The engine at `batch_size` against one prompt at a time, on the same model and threads."""
    from humpback.inference.base import Sampling
    from humpback.inference.transformers_engine import TransformersEngine

    greedy = Sampling(temperature=0.0, max_new_tokens=max_new_tokens)
    batched, single = f"batch {batch_size}", f"batch {SINGLE}"
    engines = {name: TransformersEngine(engine.model_ref, engine.tokenizer, engine.model, batch_size=size)
               for name, size in ((batched, batch_size), (single, SINGLE))}
    engines[batched].generate(requests[:2], Sampling(temperature=0.0, max_new_tokens=8))  # warm-up

    def generated(out: list) -> int:
        return sum(g.completion_tokens for g in out)

    measured = alternate({name: (lambda e=e: e.generate(requests, greedy)) for name, e in engines.items()},
                         repeats, generated, "generated tokens/s")
    print(f"  {len(requests)} prompts, {max_new_tokens} new tokens at most, greedy; "
          + ", ".join(f"{name}: {generated(side.output)} tokens" for name, side in measured.items()))
    return ratio_result(f"3. {batched} vs {single} generated tokens/s", measured[batched].rate,
                        measured[single].rate, "tok/s", TARGET_BATCH_RATIO)


# ---------------------------------------------------------------- 5, 6 and 7. vLLM

def vllm_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


def timed_start(build: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    engine = build()
    return time.perf_counter() - start, engine


def uncached(handler):
    """The handler, with vLLM's prefix cache emptied before each call: every round computes its prompts afresh,
    as a job does on rows it has not seen (within a call the rubric every rating prompt starts with is still
    shared). Without it a repeated round finds whole prompts cached and looks several times faster."""

    def run(rows: list[dict], engine) -> list[dict]:
        if getattr(engine, "llm", None) is not None:
            engine.llm.reset_prefix_cache()
        return handler(rows, engine)

    return run


def generated_count(rows: list[dict]) -> int:
    return sum(row["completion_tokens"] or 0 for row in rows)


def vllm_sections(config: dict, model: str, transformers_engine, transformers_start: float, segments: list[dict],
                  pairs: list[dict], repeats: int) -> list[Result]:
    """5, 6 and 7: vLLM against the transformers engine, then the Spark adapter with vLLM."""
    from humpback.inference.base import EngineSpec, build_engine
    from humpback.stages.augment import augment_task
    from humpback.stages.curate import logprob_task

    spec = EngineSpec("vllm", model, (("cpu_kvcache_space", 1), ("max_model_len", 4096)))
    start, engine = timed_start(lambda: build_engine(spec))
    print(f"  vLLM engine started in {start:.1f} s (transformers engine: {transformers_start:.1f} s); "
          f"vLLM {'cores ' + engine.cores if getattr(engine, 'cores', None) else 'binds its own cores'}", flush=True)
    sampling = sampling_settings(config["augment"])
    augment = uncached(augment_task(sampling, LINEAGE_AUGMENT, {"min_chars": 10, "max_chars": 1000}))
    logprob = uncached(logprob_task({**LINEAGE_CURATE, "mode": "logprob"}))
    sides = {"vllm": engine, "transformers": transformers_engine}
    results = []
    try:
        for side in sides.values():  # warm-up: first batch of each engine, rubric prefix cached
            augment(segments[:2], side)
            logprob(pairs[:2], side)
        print(f"5. augment-style generation, {len(segments)} segments, sampling {sampling}", flush=True)
        generation = alternate({name: (lambda e=e: augment(segments, e)) for name, e in sides.items()}, repeats,
                               generated_count, "generated tokens/s")
        results.append(ratio_result("5. vLLM vs transformers generated tokens/s", generation["vllm"].rate,
                                    generation["transformers"].rate, "tok/s", TARGET_VLLM_GENERATION_RATIO))
        print(f"6. logprob rating, {len(pairs)} pairs", flush=True)
        rating = alternate({name: (lambda e=e: logprob(pairs, e)) for name, e in sides.items()}, repeats, len,
                           "pairs/s")
        results.append(ratio_result("6. vLLM vs transformers logprob pairs/s", rating["vllm"].rate,
                                    rating["transformers"].rate, "pairs/s", 0.0))
        results[-1].target, results[-1].passed = "reported", None
        gaps = score_gaps(rating["vllm"].output, rating["transformers"].output)
        results.append(Result("   |score(vLLM) - score(transformers)|", f"mean {statistics.fmean(gaps):.3f}",
                              f"max {max(gaps):.3f}", None, "reported", None))
        for name, measured, per_row in (("augment", generation, lambda m: generated_count(m.output) / m.rate),
                                        ("logprob rating", rating, lambda m: len(m.output) / m.rate)):
            saved = (per_row(measured["transformers"]) - per_row(measured["vllm"])) / len(measured["vllm"].output)
            rows = (start - transformers_start) / saved if saved > 0 else float("inf")
            print(f"  {name}: vLLM saves {saved:.2f} s per row; its extra start-up ({start - transformers_start:.1f} s)"
                  f" pays for itself from about {rows:.0f} rows")
        print("7. Spark adapter with vLLM: augment handler through mapInArrow (1 partition) vs vLLM called directly;"
              " direct before and after Spark (a fresh engine after), so drift in the load hits both", flush=True)
        before = alternate({"direct": lambda: augment(segments, engine)}, repeats, token_count, "tokens/s")["direct"]
    finally:
        engine.close()  # one vLLM engine at a time: the Spark worker builds its own next
    spark = start_spark(config)
    try:
        through = spark_side(spark, spec, augment, segments, repeats)
    finally:
        spark.stop()  # its Python worker, and the worker's engine, go with it
    engine = build_engine(spec)
    try:
        augment(segments[:2], engine)  # warm-up, as before
        after = alternate({"direct": lambda: augment(segments, engine)}, repeats, token_count, "tokens/s")["direct"]
    finally:
        engine.close()
    direct = statistics.median(before.rates + after.rates)
    same = sorted((r["segment_id"], r["instruction"]) for r in through.output) == \
        sorted((r["segment_id"], r["instruction"]) for r in before.output)
    print(f"  same instructions through Spark and directly (per-row seeds): {'yes' if same else 'NO'}")
    results.append(ratio_result("7. Spark adapter (augment, vLLM) tokens/s", through.rate, direct, "tok/s",
                                TARGET_SPARK_RATIO))
    return results


def score_gaps(ours: list[dict], theirs: list[dict]) -> list[float]:
    by_id = {row["segment_id"]: row["score"] for row in theirs}
    return [abs(row["score"] - by_id[row["segment_id"]]) for row in ours
            if row["score"] is not None and by_id.get(row["segment_id"]) is not None] or [float("nan")]


def spark_side(spark, spec, handler, segments: list[dict], repeats: int) -> Measured:
    from humpback.inference.spark_adapter import map_rows
    from humpback.stages.augment import CANDIDATE_COLUMNS
    from humpback.tables import ddl

    frame = spark.createDataFrame(segments, "segment_id string, text string").coalesce(1)
    worker = map_rows(spec, handler, CANDIDATE_COLUMNS)

    def through_spark(rows_frame) -> list[dict]:
        return [row.asDict() for row in rows_frame.mapInArrow(worker, ddl(CANDIDATE_COLUMNS)).collect()]

    start, _ = timed_start(lambda: through_spark(frame.limit(2)))  # the worker starts its engine
    print(f"  Spark worker's first batch, with its vLLM engine's start: {start:.1f} s", flush=True)
    return alternate({"spark": lambda: through_spark(frame)}, repeats, token_count, "tokens/s")["spark"]


# ---------------------------------------------------------------- report

def print_table(results: list[Result]) -> None:
    header = ("measure", "ours", "baseline", "ratio", "target", "result")
    lines = [(r.measure, r.ours, r.baseline, "" if r.ratio is None else f"{r.ratio:.2f}", r.target,
              {True: "pass", False: "FAIL", None: "-"}[r.passed]) for r in results]
    widths = [max(len(str(row[i])) for row in [header, *lines]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *lines]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)))


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--segments", type=int, default=6, help="segments for the Spark comparison (1)")
    parser.add_argument("--pairs", type=int, default=16, help="(instruction, answer) pairs for rating (2, 4)")
    parser.add_argument("--prompts", type=int, default=16, help="prompts for batched vs one at a time (3)")
    parser.add_argument("--answer-tokens", type=int, default=96, help="new tokens per prompt in (3)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="batch size of the batched sides of (1) and (2) (default: conf/defaults.toml "
                             "[inference], 8)")
    parser.add_argument("--decode-batch-size", type=int, default=16,
                        help="batch size of the batched side of (3): short prompts, long answers (default 16)")
    parser.add_argument("--repeats", type=int, default=2, help="rounds of each comparison; the median counts")
    parser.add_argument("--threads", type=int, default=1, help="torch threads, the same on both sides of each pair")
    parser.add_argument("--max-new-tokens", type=int, default=None,
                        help="generate rating's max_new_tokens (default: conf/defaults.toml [curate])")
    parser.add_argument("--model", default=None, help="model for every side (default: config model.base)")
    parser.add_argument("--vllm-segments", type=int, default=16, help="segments for the vLLM comparisons (5, 7)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--no-vllm", action="store_true", help="skip 5-7 (they also skip where vLLM is missing)")
    which.add_argument("--only-vllm", action="store_true", help="run only 5-7")
    return parser.parse_args(argv)


def sampling_settings(section: dict, max_new_tokens: int | None = None) -> dict:
    """A stage's sampling settings from its config section, as its handler takes them."""
    return {"temperature": float(section["temperature"]), "top_p": float(section["top_p"]),
            "max_new_tokens": max_new_tokens or int(section["max_new_tokens"]), "seed": int(section["seed"]),
            "n": int(section.get("samples", 1))}


def main(argv: list[str]) -> int:
    from humpback.config import load_config
    from humpback.inference.base import EngineSpec, get_engine

    args = parse_args(argv)
    config = load_config()
    model = args.model or config["model"]["base"]
    batch_size = args.batch_size or int(config["inference"]["batch_size"])
    spec = EngineSpec("transformers", model, (("batch_size", batch_size), ("cpu_threads", args.threads),
                                              ("device", "cpu"), ("prefix_cache", True)))
    print(f"model {model}, {args.threads} torch thread(s) per side, {os.cpu_count()} cores, "
          f"load average at start {os.getloadavg()[0]:.1f}", flush=True)
    segments = kept_segments(max(args.segments, args.pairs, args.vllm_segments))
    seed = seed_pairs()
    pairs = rating_pairs(seed, segments, args.pairs)
    start, engine = timed_start(lambda: get_engine(spec))  # sets this process's torch threads to --threads
    results: list[Result] = []
    if not args.only_vllm:
        spark = start_spark(config)
        try:
            print("1. Spark adapter: augment handler through mapInArrow (1 partition) vs called directly", flush=True)
            results.append(spark_overhead(spark, engine, spec, segments[:args.segments],
                                          sampling_settings(config["augment"]), args.repeats))
        finally:
            spark.stop()
        curate_sampling = sampling_settings(config["curate"], args.max_new_tokens)
        print("2. rating: logprob (prefix cache) vs generate (curate's settings, guided score line)", flush=True)
        print(f"  generate sampling {curate_sampling}; scorer {model} (the embedded model rates like an untuned M0)")
        rating, parsing = rating_modes(engine, pairs, curate_sampling, args.repeats)
        print(f"3. transformers engine: batch {args.decode_batch_size} vs batch {SINGLE}", flush=True)
        batching = batching_speedup(engine, answer_requests(seed, args.prompts), args.answer_tokens, args.repeats,
                                    args.decode_batch_size)
        results += [*rating, batching, *parsing]
    if args.no_vllm:
        pass
    elif not vllm_available():
        print("5-7. vLLM is not installed (`make setup` installs its CPU build on CPUs with AVX-512): skipped")
    else:
        print("5-7. vLLM against the transformers engine", flush=True)
        results += vllm_sections(config, model, engine, start, segments[:args.vllm_segments], pairs, args.repeats)
    print(f"load average at end {os.getloadavg()[0]:.1f}")
    print()
    print_table(results)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
