"""Tokens/s of our SFT trainer against a plain transformers.Trainer, side by side in one run (issue 4, "Speed").

  ours:  humpback.training.trainer.train_sft with LoRA (our Trainer subclass, schedule, PadCollator, token count)
  plain: peft.get_peft_model + transformers.Trainer + transformers.DataCollatorForSeq2Seq, Trainer defaults
         except the settings both sides share

Same model (the embedded SmolLM2 by default, loaded fresh for every run, outside the clock), same data (the seed
set encoded by humpback.training.sft.encode_example, forward direction, seed tag), same batch, max_length, steps,
seed, LoRA config (r, alpha, dropout, q/v targets) and optimizer settings (AdamW, learning rate, weight decay,
betas). Tokens are the real (non-pad) tokens of the batches trained; with the same seed both sides train the same
batches, which the script checks. The clock covers the whole call: LoRA wrapping, Trainer set-up, training and
saving the adapter.

    .venv/bin/python benchmarks/bench_trainer.py [--steps 6] [--max-length 256] [--batch 4] [--repeats 2]
                                                 [--threads 1] [--model REF]

Runs alternate, the order flipping each round (ours, plain, plain, ours, ...), after a one-step warm-up; each
side's median counts, so load from other processes on a shared machine hits both sides alike.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SEED = REPO / "data" / "sample" / "seed.jsonl"
TARGET_RATIO = 0.95
PLAIN_KEYS = ("input_ids", "labels", "attention_mask")


@dataclass
class Run:
    tokens: int
    seconds: float  # the whole call
    train_seconds: float  # inside Trainer.train(), as the Trainer reports it

    @property
    def rate(self) -> float:
        return self.tokens / self.seconds

    @property
    def train_rate(self) -> float:
        return self.tokens / self.train_seconds


class TokenCountingCollator:
    """Wraps a collator and records the real tokens of every batch it builds (the loader may build one ahead)."""

    def __init__(self, collator):
        self.collator = collator
        self.batch_tokens: list[int] = []

    def __call__(self, examples):
        batch = self.collator(examples)
        self.batch_tokens.append(int(batch["attention_mask"].sum()))
        return batch


def encoded_seed(tokenizer, max_length: int) -> list[dict]:
    from humpback.prompts import SEED_TAG
    from humpback.training.sft import build_messages, encode_example

    examples = []
    for line in SEED.read_text(encoding="utf-8").splitlines():
        pair = json.loads(line)
        messages, completion = build_messages(pair["instruction"], pair["output"], "forward", SEED_TAG)
        examples.append(encode_example(tokenizer, messages, completion, max_length))
    return examples


def fresh_model(model_ref: str):
    from humpback.models import load_model

    return load_model(model_ref, device="cpu")[1]


def train_ours(model_ref: str, tokenizer, examples: list[dict], settings, out_dir: str) -> Run:
    from humpback.training.trainer import train_sft

    model = fresh_model(model_ref)
    start = time.perf_counter()
    result = train_sft(model, tokenizer, examples, settings, out_dir)
    return Run(result.tokens_seen, time.perf_counter() - start, result.train_runtime)


def plain_arguments(settings, n_examples: int, out_dir: str):
    from transformers import TrainingArguments

    per_device, accumulation = settings.batch_layout(n_examples)
    return TrainingArguments(
        output_dir=out_dir, per_device_train_batch_size=per_device, gradient_accumulation_steps=accumulation,
        max_steps=settings.max_steps, learning_rate=settings.resolved_learning_rate(),
        weight_decay=settings.weight_decay, adam_beta1=settings.adam_beta1, adam_beta2=settings.adam_beta2,
        seed=settings.seed, data_seed=settings.seed, logging_steps=settings.logging_steps,
        save_strategy="no", report_to="none",
    )


def train_plain(model_ref: str, tokenizer, examples: list[dict], settings, out_dir: str) -> Run:
    from peft import LoraConfig, get_peft_model
    from transformers import DataCollatorForSeq2Seq, Trainer, set_seed

    model = fresh_model(model_ref)
    plain_examples = [{key: example[key] for key in PLAIN_KEYS} for example in examples]
    collator = TokenCountingCollator(DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100))
    start = time.perf_counter()
    set_seed(settings.seed)
    model = get_peft_model(model, LoraConfig(
        r=settings.lora_r, lora_alpha=settings.lora_alpha, lora_dropout=settings.dropout,
        target_modules=list(settings.lora_target_modules), bias="none", task_type="CAUSAL_LM"))
    args = plain_arguments(settings, len(examples), out_dir)
    output = Trainer(model=model, args=args, train_dataset=plain_examples, data_collator=collator).train()
    model.save_pretrained(out_dir)
    seconds = time.perf_counter() - start
    trained = output.global_step * args.gradient_accumulation_steps  # batches past these were built, not trained
    return Run(sum(collator.batch_tokens[:trained]), seconds, output.metrics["train_runtime"])


def alternate(sides: dict, repeats: int) -> dict[str, list[Run]]:
    """`repeats` rounds of both sides, the order flipping each round; every run of each side."""
    runs: dict[str, list[Run]] = {name: [] for name in sides}
    for round_no in range(1, repeats + 1):
        order = list(sides) if round_no % 2 else list(reversed(sides))
        for name in order:
            with tempfile.TemporaryDirectory() as out_dir:
                run = sides[name](out_dir=out_dir)
            print(f"  round {round_no} {name:<5} {run.tokens} tokens in {run.seconds:6.1f} s: {run.rate:6.1f} tokens/s "
                  f"(inside train(): {run.train_seconds:6.1f} s, {run.train_rate:6.1f} tokens/s)", flush=True)
            runs[name].append(run)
    return runs


def median_rates(runs: list[Run]) -> tuple[float, float]:
    """(whole-call tokens/s, inside-train() tokens/s), each the median over the runs."""
    return statistics.median(run.rate for run in runs), statistics.median(run.train_rate for run in runs)


def print_table(runs: dict[str, list[Run]]) -> None:
    (ours, ours_train), (plain, plain_train) = median_rates(runs["ours"]), median_rates(runs["plain"])
    rows = [("measure (median tokens/s)", "ours", "baseline", "ratio", "target", "result"),
            ("LoRA SFT, whole call", f"{ours:.1f}", f"{plain:.1f}", f"{ours / plain:.3f}", f">= {TARGET_RATIO:g}",
             "pass" if ours / plain >= TARGET_RATIO else "FAIL"),
            ("LoRA SFT, inside train()", f"{ours_train:.1f}", f"{plain_train:.1f}", f"{ours_train / plain_train:.3f}",
             "reported", "-")]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    rows.insert(1, tuple("-" * w for w in widths))
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)))


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=6, help="optimizer steps per run")
    parser.add_argument("--max-length", type=int, default=256, help="tokens per example")
    parser.add_argument("--batch", type=int, default=4, help="examples per step (no gradient accumulation)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each side; the median counts")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (one process: the same for both)")
    parser.add_argument("--model", default=None, help="model (default: config model.base)")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    import torch

    from humpback.config import load_config
    from humpback.models import load_tokenizer
    from humpback.training.trainer import TrainSettings

    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    model_ref = args.model or load_config()["model"]["base"]
    tokenizer = load_tokenizer(model_ref)
    examples = encoded_seed(tokenizer, args.max_length)
    settings = TrainSettings(batch_size=args.batch, per_device_batch_size=args.batch, max_steps=args.steps,
                             max_length=args.max_length)
    print(f"model {model_ref}, {len(examples)} seed examples, batch {args.batch} x max_length {args.max_length}, "
          f"{args.steps} steps, LoRA r={settings.lora_r} alpha={settings.lora_alpha} on "
          f"{'/'.join(settings.lora_target_modules)}, {args.threads} torch thread(s), {os.cpu_count()} cores, "
          f"load average at start {os.getloadavg()[0]:.1f}", flush=True)
    sides = {name: partial(train, model_ref, tokenizer, examples, settings)
             for name, train in (("ours", train_ours), ("plain", train_plain))}
    with tempfile.TemporaryDirectory() as out_dir:  # warm-up: one step, not counted
        train_plain(model_ref, tokenizer, examples, replace(settings, max_steps=1), out_dir)
    runs = alternate(sides, args.repeats)
    same = len({run.tokens for side in runs.values() for run in side}) == 1
    print(f"same batches on both sides (equal token counts): {'yes' if same else 'NO'}; "
          f"load average at end {os.getloadavg()[0]:.1f}")
    print()
    print_table(runs)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
