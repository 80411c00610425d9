"""`humpback evaluate`: the pairwise win rate of a model against a baseline -> `evaluations` and MLflow.

Both models answer the evaluation prompts (system message: the paper's inference tag, both source tags), the
answers are written as AlpacaEval JSON files (so `alpaca_eval` can re-judge them), and a judge compares every
pair in both orders (humpback.evaluation.judge). The paper's judge was GPT-4; here any engine can judge: an
OpenAI-compatible endpoint (`--judge-engine openai`), vLLM or a local model. The default judge is the base model
(config model.base), so neither contestant judges its own answers; with the embedded 135M model that judge is
weak, and its verdicts are a smoke test of the loop, not a measurement.
Beside the raw win rate and its standard error, each evaluation stores both models' mean answer length and a
length-controlled win rate (humpback.evaluation.length_control: AlpacaEval 2's logistic model of the verdicts on the
length difference, fitted on this evaluation's own judgments; nothing is downloaded).
Optionally (--benchmarks) the model also runs the paper's lm-eval benchmarks and IFEval, where their data is local.
"""
from __future__ import annotations

import argparse
import json
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from humpback.ids import evaluation_id, file_sha256
from humpback.stage import Context, Stage, StageError
from humpback.tables import TABLES

TABLE = "evaluations"
ENGINES = ("transformers", "vllm", "openai")
EVALUATION_COLUMNS = TABLES[TABLE].columns
_ITERATION_ALIAS = re.compile(r"@m(\d+)$")
PROGRESS_LINES = 10  # at most this many progress lines for each model's answers and for the judge


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="URI", help="the model to evaluate, e.g. models:/humpback-forward@m1")
    parser.add_argument("--baseline", default=None, metavar="URI",
                        help="the model it is compared with (default: evaluate.baseline, models:/humpback-forward@m0)")
    parser.add_argument("--judge", default=None, metavar="URI",
                        help="the judging model (default: evaluate.judge, else the base model model.base)")
    parser.add_argument("--prompts", default=None, metavar="PATH",
                        help="JSONL of {\"instruction\": ...} or an AlpacaEval JSON list (default: evaluate.prompts, "
                             "else data/sample/eval_prompts.jsonl)")
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N prompts")
    parser.add_argument("--engine", choices=ENGINES, default=None,
                        help="engine for the model and the baseline (default: inference.engine)")
    parser.add_argument("--judge-engine", choices=ENGINES, default=None, help="engine for the judge (default: --engine)")
    parser.add_argument("--iteration", type=int, default=None,
                        help="the model's iteration, recorded with the result (default: K from an alias @mK)")
    parser.add_argument("--benchmarks", action="store_true",
                        help="also run lm-eval on siqa, piqa, arc_easy, arc_challenge, openbookqa, mmlu and ifeval "
                             "(needs the `eval` extra and locally cached task data, or evaluate.ifeval_data for "
                             "IFEval; a benchmark without its data is skipped with one line)")


def evaluate_settings(config: dict) -> dict[str, Any]:
    values = dict(config["evaluate"])  # conf/defaults.toml [evaluate]; keys and types checked by load_config
    for key in ("temperature", "top_p"):
        values[key] = float(values[key])
    for key in ("max_new_tokens", "seed", "judge_max_new_tokens", "benchmark_limit"):
        values[key] = int(values[key])
    if values["benchmark_limit"] < 0:
        raise StageError("evaluate.benchmark_limit must be 0 (all) or more")
    return values


def load_prompts(args: argparse.Namespace, settings: dict):
    """(path, prompts) with --limit applied; a file in the wrong format is a ValueError naming the fields."""
    from humpback.evaluation.alpaca import DEFAULT_EVAL_PROMPTS, read_prompts

    if args.limit is not None and args.limit < 1:
        raise StageError("--limit must be at least 1")
    path = Path(args.prompts or settings["prompts"] or DEFAULT_EVAL_PROMPTS)
    return path, read_prompts(path)[:args.limit]


def infer_iteration(model_ref: str) -> int | None:
    match = _ITERATION_ALIAS.search(model_ref)
    return int(match.group(1)) if match else None


def engines(ctx: Context, args: argparse.Namespace) -> tuple[str, str]:
    """(the contestants' engine, the judge's)."""
    engine = args.engine or ctx.config.get("inference", {}).get("engine", "transformers")
    return engine, args.judge_engine or engine


def model_refs(ctx: Context, args: argparse.Namespace, settings: dict) -> dict[str, str]:
    return {"model": args.model, "baseline": args.baseline or settings["baseline"],
            "judge": args.judge or settings["judge"] or ctx.config["model"]["base"]}


def check_inputs(ctx: Context, args: argparse.Namespace) -> None:
    """Settings, the prompts file and the three model references, before the run opens."""
    settings = evaluate_settings(ctx.config)
    load_prompts(args, settings)
    engine, judge_engine = engines(ctx, args)
    for role, ref in model_refs(ctx, args, settings).items():
        pinned_model(ref, judge_engine if role == "judge" else engine)


def pinned_model(ref: str, engine: str) -> str:
    """A model identity that does not move with an alias; a served model (openai) is known only by its name.
    Resolving first also fails fast, with the aliases that exist, before any model is loaded."""
    from humpback.models import resolve_model, stable_model_ref

    return ref if engine == "openai" else stable_model_ref(resolve_model(ref))


def answer_request(instruction: str, run_seed: int = 0):
    """The prompt's request, sampled with its own seed (a hash of the run's seed and the prompt)."""
    from humpback.inference.base import Request
    from humpback.inference.seeding import row_seed
    from humpback.prompts import INFERENCE_TAG

    return Request(messages=({"role": "system", "content": INFERENCE_TAG}, {"role": "user", "content": instruction}),
                   seed=row_seed(run_seed, instruction))


def with_engine(config: dict, ref: str, kind: str, work: Callable[[Any], Any]) -> Any:
    """work(engine) with a fresh engine for `ref`, closed afterwards so the next model has the memory."""
    from humpback.inference.base import build_engine
    from humpback.inference.spark_adapter import engine_spec

    engine = build_engine(engine_spec(config, ref, kind))
    try:
        return work(engine)
    finally:
        engine.close()


class TokenCounter:
    """An engine that counts the tokens going through it, for progress lines."""

    def __init__(self, engine):
        self.engine = engine
        self.prompt_tokens = self.completion_tokens = 0

    def generate(self, requests, sampling):
        generations = self.engine.generate(requests, sampling)
        self.prompt_tokens += sum(generation.prompt_tokens for generation in generations)
        self.completion_tokens += sum(generation.completion_tokens for generation in generations)
        return generations

    def next_token_probs(self, requests, candidates):
        scores = self.engine.next_token_probs(requests, candidates)
        self.prompt_tokens += sum(score.prompt_tokens for score in scores)
        return scores

    def take(self) -> tuple[int, int]:
        """(prompt, generated) tokens since the last take."""
        counts = (self.prompt_tokens, self.completion_tokens)
        self.prompt_tokens = self.completion_tokens = 0
        return counts


def chunk_size(total: int, batch_size: int) -> int:
    """Items per progress line: whole engine batches (a smaller call batches worse), at most PROGRESS_LINES lines."""
    return batch_size * max(1, math.ceil(math.ceil(total / batch_size) / PROGRESS_LINES))


def in_chunks(engine, items: list, work: Callable[[list, Any], list], size: int, stage: str, unit: str) -> list:
    """work(chunk, engine) over consecutive chunks of items, concatenated, with a progress line after each chunk."""
    from humpback.reporting import Progress

    counter, progress, results = TokenCounter(engine), Progress(stage, len(items), unit), []
    for start in range(0, len(items), size):
        chunk = items[start:start + size]
        results += work(chunk, counter)
        print(progress.advance(len(chunk), *counter.take()), flush=True)
    return results


def answer_task(sampling):
    """Prompt -> (answer, finish reason, failed): a failed generation answers with empty text, which the judge sees
    as such; an answer cut by max_new_tokens has finish reason `length`."""
    from humpback.inference.task import InferenceTask

    def format_output(row: dict, generation) -> dict:
        failed = bool(generation.error or not generation.texts)
        return {"answer": "" if failed else generation.texts[0], "failed": failed,
                "finish_reason": generation.finish_reasons[0] if generation.finish_reasons else None}

    return InferenceTask(lambda row: answer_request(row["instruction"], sampling.seed), format_output,
                         sampling=sampling)


def generate_answers(engine, instructions: list[str], sampling, role: str,
                     batch_size: int) -> tuple[list[str], list[str | None], int]:
    """(answers, finish reasons, failed), with progress lines."""
    rows = in_chunks(engine, [{"instruction": text} for text in instructions], answer_task(sampling),
                     chunk_size(len(instructions), batch_size), f"evaluate ({role} answers)", "prompts")
    return [row["answer"] for row in rows], [row["finish_reason"] for row in rows], sum(row["failed"] for row in rows)


def judge_answers(engine, instructions: list[str], outputs: dict, sampling, batch_size: int) -> list:
    """The judge's Judgments of the model's against the baseline's answers, with progress lines."""
    from humpback.evaluation.judge import judge_pairs

    pairs = list(zip(instructions, [o.output for o in outputs["model"]], [o.output for o in outputs["baseline"]]))
    size = chunk_size(len(pairs), max(1, batch_size // 2))  # a pair is judged in both orders: two requests
    return in_chunks(engine, pairs, lambda chunk, counted: judge_pairs(counted, *zip(*chunk), sampling), size,
                     "evaluate (judge)", "pairs")


LENGTH_COLUMNS = ("model_mean_length", "baseline_mean_length", "lc_win_rate", "lc_length_coef")


def length_columns(controlled) -> dict[str, float | None]:
    """The `evaluations` columns of a LengthControlledWinRate (all None without judgments)."""
    if controlled is None:
        return dict.fromkeys(LENGTH_COLUMNS)
    return {"model_mean_length": controlled.mean_model_length, "baseline_mean_length": controlled.mean_baseline_length,
            "lc_win_rate": controlled.lc_win_rate, "lc_length_coef": controlled.length_coef}


def run(ctx: Context, args: argparse.Namespace) -> None:
    from humpback.evaluation.alpaca import ModelOutput
    from humpback.evaluation.length_control import judgments_length_controlled_win_rate
    from humpback.evaluation.winrate import win_rate
    from humpback.inference.base import Sampling

    settings = evaluate_settings(ctx.config)
    prompts_path, prompts = load_prompts(args, settings)
    engine, judge_engine = engines(ctx, args)
    refs = model_refs(ctx, args, settings)
    pinned = {role: pinned_model(ref, judge_engine if role == "judge" else engine) for role, ref in refs.items()}
    instructions = [prompt.instruction for prompt in prompts]
    answer_sampling = Sampling(temperature=settings["temperature"], top_p=settings["top_p"],
                               max_new_tokens=settings["max_new_tokens"], seed=settings["seed"])
    print(f"evaluate: {refs['model']} against {refs['baseline']} on {len(prompts)} prompts from {prompts_path}, "
          f"judge {refs['judge']} ({judge_engine})", flush=True)

    batch_size = int(ctx.config.get("inference", {}).get("batch_size", 8))
    outputs, failed, truncated = {}, {}, {}
    for role in ("model", "baseline"):
        answers, reasons, failed[role] = with_engine(ctx.config, refs[role], engine, partial(
            generate_answers, instructions=instructions, sampling=answer_sampling, role=role, batch_size=batch_size))
        outputs[role] = [ModelOutput(p.instruction, answer, refs[role], p.dataset, reason)
                         for p, answer, reason in zip(prompts, answers, reasons)]
        truncated[role] = sum(reason == "length" for reason in reasons)
    judge_sampling = Sampling(temperature=0.0, top_p=1.0, max_new_tokens=settings["judge_max_new_tokens"],
                              seed=settings["seed"])
    judgments = with_engine(ctx.config, refs["judge"], judge_engine, partial(
        judge_answers, instructions=instructions, outputs=outputs, sampling=judge_sampling, batch_size=batch_size))
    result = win_rate([j.outcome for j in judgments], unparsed=sum(j.unparsed for j in judgments))
    controlled = judgments_length_controlled_win_rate(judgments)

    prompts_sha256 = file_sha256(prompts_path)
    record = {
        "evaluation_id": evaluation_id(pinned, prompts_sha256, len(prompts), (engine, judge_engine), settings),
        **refs, **{f"{role}_pinned": value for role, value in pinned.items()},
        "n_prompts": result.n, "wins": result.wins, "ties": result.ties, "losses": result.losses,
        "unparsed": result.unparsed, "win_rate": result.win_rate, "stderr": result.stderr,
        "iteration": args.iteration if args.iteration is not None else infer_iteration(args.model),
        "prompts": str(prompts_path), "prompts_sha256": prompts_sha256, "engine": engine,
        "judge_engine": judge_engine, "evaluated_at": datetime.now(UTC),
        "model_truncated": truncated["model"], "baseline_truncated": truncated["baseline"],
        **length_columns(controlled),
    }
    record_and_log(ctx, record, settings, outputs, judgments, failed)
    if args.benchmarks:
        log_benchmarks(record, settings)


def record_and_log(ctx: Context, record: dict, settings: dict, outputs: dict, judgments: list, failed: dict) -> None:
    """Into the stage's MLflow run: parameters, metrics, the AlpacaEval files and the judgments; then the
    `evaluations` row."""
    import tempfile

    import mlflow

    from humpback.evaluation.alpaca import write_outputs
    from humpback.tracking import log_model_metrics

    mlflow.set_tags({f"humpback.{role}": record[role] for role in ("model", "baseline", "judge")})
    mlflow.log_params({key: record[key] for key in ("model", "baseline", "judge", "model_pinned", "baseline_pinned",
                                                     "judge_pinned", "prompts", "prompts_sha256", "engine",
                                                     "judge_engine", "iteration")})
    metrics = {key: record[key] for key in ("win_rate", "stderr", "wins", "ties", "losses", "unparsed",
                                            "n_prompts", "model_truncated", "baseline_truncated", *LENGTH_COLUMNS)
               if record.get(key) is not None}
    metrics.update({f"answer_errors.{role}": count for role, count in failed.items()})
    metrics["judge_errors"] = sum(1 for judgment in judgments if judgment.error)
    metrics["constrained_verdicts"] = sum(judgment.constrained for judgment in judgments)
    # Logged here, not as the stage's summary: the step is the iteration, so MLflow plots M1, M2, ... in order.
    # They go to the run and to the evaluated model's LoggedModel (a registered version's).
    log_model_metrics(record["model_pinned"], {key: float(value) for key, value in metrics.items()},
                      step=record["iteration"] or 0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for role, rows in outputs.items():
            write_outputs(folder / f"{role}_outputs.json", rows)
        (folder / "judgments.jsonl").write_text(
            "".join(json.dumps(j.to_json(), ensure_ascii=False) + "\n" for j in judgments), encoding="utf-8")
        mlflow.log_artifacts(str(folder), artifact_path="evaluation")
        record["mlflow_run_id"] = mlflow.active_run().info.run_id
        store(ctx, record)
        log_win_rate_plot(ctx, record["baseline"], folder / "win_rate_per_iteration.png")
    print_summary(record, failed)


def log_win_rate_plot(ctx: Context, baseline: str, path: Path) -> None:
    """Raw (with its standard error) and length-controlled win rate of every evaluated iteration against this
    baseline, as an MLflow plot."""
    import mlflow
    from matplotlib.figure import Figure  # no pyplot: leaves the process-wide backend alone
    from pyspark.sql import functions as F

    rows = ctx.lakehouse.read(TABLE).where((F.col("baseline") == baseline) & F.col("iteration").isNotNull()) \
        .orderBy("iteration", "evaluated_at").collect()
    latest = {row["iteration"]: row for row in rows}  # the newest evaluation of each iteration
    if not latest:
        return
    iterations = sorted(latest)
    figure = Figure(figsize=(6, 4))
    axis = figure.subplots()
    axis.errorbar(iterations, [latest[k]["win_rate"] for k in iterations],
                  yerr=[latest[k]["stderr"] for k in iterations], fmt="o-", capsize=4, label="raw")
    controlled = [k for k in iterations if latest[k]["lc_win_rate"] is not None]  # older rows have none
    if controlled:
        axis.plot(controlled, [latest[k]["lc_win_rate"] for k in controlled], "s--", label="length-controlled")
    axis.axhline(0.5, color="grey", linestyle=":")
    axis.set(xlabel="iteration (M_k)", ylabel="win rate", ylim=(0, 1), xticks=iterations,
             title=f"Win rate against {baseline}")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    mlflow.log_artifact(str(path), artifact_path="evaluation")


def store(ctx: Context, record: dict) -> None:
    from humpback.tables import ddl

    frame = ctx.spark.createDataFrame([record], ddl(EVALUATION_COLUMNS))
    result = ctx.lakehouse.upsert(frame, TABLE, ["evaluation_id"])
    print(f"evaluate: {TABLE} version {result['version']} ({'replaced' if result['updated'] else 'new'} row "
          f"{record['evaluation_id']})")


def print_summary(record: dict, failed: dict) -> None:
    print(f"evaluate: {record['model']} vs {record['baseline']}: {record['wins']} wins, {record['ties']} ties, "
          f"{record['losses']} losses of {record['n_prompts']} prompts ({record['unparsed']} unparsed verdicts "
          f"scored as ties); win rate {100 * record['win_rate']:.1f}% ± {100 * record['stderr']:.1f} (standard error)")
    if any(failed.values()):
        print("evaluate: failed answers (judged as empty): " + ", ".join(f"{k} {v}" for k, v in failed.items()))
    if record["lc_win_rate"] is not None:
        print(f"evaluate: length-controlled win rate {100 * record['lc_win_rate']:.1f}% (mean answer length: model "
              f"{record['model_mean_length']:.0f}, baseline {record['baseline_mean_length']:.0f} characters)")
    print(f"evaluate: answers cut by the token budget (max_new_tokens): model {record['model_truncated']}, "
          f"baseline {record['baseline_truncated']} of {record['n_prompts']}")


def log_benchmarks(record: dict, settings: dict) -> None:
    """lm-eval's scores, as `benchmark.<name>` metrics of the run and of the evaluated model."""
    from humpback.evaluation.lm_eval import run_benchmarks, run_ifeval
    from humpback.tracking import log_model_metrics

    if record["engine"] == "openai":
        print("benchmarks: lm-eval needs the model's weights; skipped for a served (openai) model")
        return
    limit = settings["benchmark_limit"] or None
    scores = run_benchmarks(record["model"], limit=limit)
    scores.update(run_ifeval(record["model"], data_file=settings["ifeval_data"] or None, limit=limit))
    if scores:
        log_model_metrics(record["model_pinned"], {f"benchmark.{name}": value for name, value in scores.items()},
                          step=record["iteration"] or 0)
        print("benchmarks: " + ", ".join(f"{name} {value:.3f}" for name, value in sorted(scores.items())))


STAGE = Stage("evaluate", "Pairwise win rate of a model against a baseline, judged in both orders.", run, options,
              writes=("evaluations",), settings=("evaluate",), check=check_inputs,
              prompts=("judge",))
