"""`humpback train`: fine-tune a backward (M_yx) or forward (M0, M1, ...) model on one version of a Delta table,
log it to MLflow with its dataset lineage, and register it under an alias.

The model is an MLflow LoggedModel (`humpback-forward-m1`, ...): the run's output, with the run's parameters, its
training metrics attached to the training set (MLflow's "Datasets used"), the gate's metrics for a backward model,
and its files as artifacts; the registered version is made from it. A backward model also links the backward
prompt it was trained on (humpback.tracking.link_prompts).

The dataset is `seed` or a named set of `training_sets`, read at one table version (the latest unless pinned) that
the run records with a content digest, and the stage prints what that version holds. A forward model (M0) trains
on the whole seed, train and dev splits, as in the paper; a backward model trains on the train split only, and is
then checked on the dev split it never saw (the gate). Training sets are at most tens of thousands of pairs, so
the rows are collected to the driver and tokenized there. The paper's batch rule (32, or 8 below 3,000 examples)
counts the rows read, which are exactly the examples trained on: one per row, after the split filter and after
any upsampled copies.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from humpback.stage import Context, Stage, StageError
from humpback.tracking import REGISTERED_MODELS

SEED_TABLE = "seed"
TRAINING_SETS = "training_sets"
TRUNCATION_KINDS = ("none", "completion_tail", "prompt_tail", "both")
DIGEST_CHARS = 32  # MLflow keeps at most 36 characters of a dataset digest; the full sha256 is a tag


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--direction", required=True, choices=tuple(REGISTERED_MODELS),
                        help="backward: output -> instruction (M_yx); forward: instruction -> output (M0, M1, ...)")
    parser.add_argument("--dataset", required=True, metavar="seed|NAME[@VERSION]",
                        help="`seed` (all of it for a forward model; its train split for a backward model) or a "
                             "set of `training_sets`; @VERSION pins the Delta version (default: the latest)")
    parser.add_argument("--alias", required=True, help="registry alias, e.g. myx, m0, m1")
    parser.add_argument("--max-steps", type=int, default=None, help="stop after N optimizer steps")
    parser.add_argument("--base", default=None, metavar="MODEL_REF",
                        help="the model to fine-tune (default: the model.base setting)")
    parser.add_argument("--full-finetune", action="store_true", help="train all weights instead of a LoRA adapter")
    parser.add_argument("--skip-gate", action="store_true", help="do not check a backward model on the dev split")


@dataclass(frozen=True)
class DatasetRef:
    """`seed` or a training set name, at an optional table version."""

    name: str
    version: int | None

    @property
    def table(self) -> str:
        return SEED_TABLE if self.name == SEED_TABLE else TRAINING_SETS


def parse_dataset(text: str) -> DatasetRef:
    """NAME, NAME@VERSION or NAME@vVERSION."""
    name, _, version = text.strip().partition("@")
    if not name:
        raise StageError(f"--dataset {text!r}: expected seed or NAME[@VERSION]")
    if not version:
        return DatasetRef(name, None)
    if not version.removeprefix("v").isdigit():
        raise StageError(f"--dataset {text!r}: the version after @ must be a number, e.g. {name}@3")
    return DatasetRef(name, int(version.removeprefix("v")))


@dataclass(frozen=True)
class TrainingData:
    """The rows read for training and where they came from."""

    ref: DatasetRef
    path: str
    version: int
    rows: list[dict]  # example_key, instruction, output, source, tag; one row = one training example
    selection: str  # the filter that chose the rows from the table version: SQL, or "all splits" for the seed

    @property
    def label(self) -> str:
        return f"{self.ref.name}@v{self.version}"

    @property
    def n_examples(self) -> int:
        """The examples the model trains on, which the paper's batch-size rule counts."""
        return len(self.rows)

    @cached_property
    def sha256(self) -> str:
        """sha256 over the rows in example_key order: equal for equal content, whatever the table version."""
        digest = hashlib.sha256()
        for row in sorted(self.rows, key=lambda r: r["example_key"]):
            fields = [row["example_key"], row["instruction"], row["output"], row["source"], row["tag"]]
            digest.update(json.dumps(fields, ensure_ascii=False).encode("utf-8") + b"\n")
        return digest.hexdigest()


def read_training_data(lakehouse, ref: DatasetRef, direction: str = "forward") -> TrainingData:
    """The dataset's rows at one version (the whole seed for a forward model, its train split for a backward one);
    an empty or unknown dataset is a StageError."""
    table = ref.table
    if not lakehouse.exists(table):
        hint = "humpback seed --input PATH --format jsonl" if table == SEED_TABLE else "humpback trainset --name NAME"
        raise StageError(f"no `{table}` table in {lakehouse.root}: run `{hint}` first")
    latest = lakehouse.version(table)
    version = latest if ref.version is None else ref.version
    if not 0 <= version <= latest:
        raise StageError(f"`{table}` has versions 0..{latest}, not {version}")
    frame = lakehouse.read(table, version)
    if table == SEED_TABLE:
        selection = seed_selection(direction)
        rows = seed_rows(frame, direction)
    else:
        selection, rows = f"set_name = {ref.name!r}", training_set_rows(frame, ref.name)
    if not rows:
        raise StageError(empty_dataset_message(frame, ref, version, direction))
    return TrainingData(ref=ref, path=lakehouse.path(table), version=version, rows=rows, selection=selection)


def seed_selection(direction: str) -> str:
    """Forward models train on the whole seed (the paper); the backward model leaves the dev split to its gate."""
    return "split = 'train'" if direction == "backward" else "all splits"


def seed_rows(frame, direction: str = "forward") -> list[dict]:
    from pyspark.sql import functions as F

    from humpback.training.sft import SEED_TAG

    if direction == "backward":
        frame = frame.where(F.col("split") == "train")
    selected = frame.select(F.col("example_id").alias("example_key"), "instruction", "output",
                            F.lit("seed").alias("source"), F.lit(SEED_TAG).alias("tag"))
    return [row.asDict() for row in selected.orderBy("example_key").collect()]


def training_set_rows(frame, name: str) -> list[dict]:
    from pyspark.sql import functions as F

    selected = frame.where(F.col("set_name") == name).select("example_key", "instruction", "output", "source", "tag")
    return [row.asDict() for row in selected.orderBy("example_key").collect()]


def empty_dataset_message(frame, ref: DatasetRef, version: int, direction: str = "forward") -> str:
    if ref.table == SEED_TABLE:
        which = "train-split rows" if direction == "backward" else "rows"
        return f"seed@v{version} has no {which}: nothing to train on"
    names = sorted(row["set_name"] for row in frame.select("set_name").distinct().collect())
    return (f"no training set {ref.name!r} in training_sets@v{version} (nothing to train on); "
            f"sets there: {', '.join(names) or 'none'}")


def describe_data(lakehouse, data: TrainingData, direction: str) -> str:
    """One line: the table version read, its row counts by split (seed) or by source (a training set), and what
    of it this model trains on."""
    if data.ref.table == SEED_TABLE:
        from humpback.seeds import format_summary, table_summary

        summary = table_summary(lakehouse, data.version)
        held_out = summary["rows"] - data.n_examples
        use = (f"the backward model trains on the {data.n_examples} train-split pairs and holds out "
               f"{held_out} for its gate" if direction == "backward"
               else f"the {direction} model trains on all {data.n_examples} pairs (train and dev)")
        return f"train: {format_summary(summary)}; {use}"
    sources = Counter(row["source"] for row in data.rows)
    by_source = ", ".join(f"{name} {sources[name]}" for name in sorted(sources))
    return (f"train: training_sets@v{data.version} set {data.ref.name!r} holds {data.n_examples} examples "
            f"({by_source}); the {direction} model trains on all of them")


def forward_tag(row: dict) -> str | None:
    """The source tag a forward model sees as its system prompt: seed rows always get the seed tag."""
    from humpback.training.sft import SEED_TAG

    return SEED_TAG if row["source"] == "seed" else row["tag"]


def encode_rows(tokenizer, rows: list[dict], direction: str, max_length: int) -> tuple[list[dict], Counter]:
    """Encoded examples and how many of them each truncation step cut."""
    from humpback.training.sft import build_messages, encode_example

    examples = []
    for row in rows:
        tag = forward_tag(row) if direction == "forward" else None
        messages, completion = build_messages(row["instruction"], row["output"], direction, tag)
        examples.append(encode_example(tokenizer, messages, completion, max_length))
    return examples, Counter(example["truncation"] for example in examples)


def train_settings(config: dict, args: argparse.Namespace):
    """TrainSettings: its own defaults (the paper's), then [train] settings, then --max-steps/--full-finetune."""
    from humpback.training.trainer import TrainSettings

    values = dict(config.get("train", {}))  # every key a TrainSettings field: load_config checked them
    if "lora_target_modules" in values:
        values["lora_target_modules"] = tuple(values["lora_target_modules"])
    if args.max_steps is not None:
        values["max_steps"] = args.max_steps
    if args.full_finetune:
        values["full_finetune"] = True
    return TrainSettings(**values)


def gate_settings(config: dict) -> dict:
    return dict(config["gate"])  # conf/defaults.toml [gate], sized for a CPU; keys and types checked by load_config


@dataclass(frozen=True)
class BaseModel:
    """The model fine-tuned from: where it resolved to, and the fixed reference and weight hash recorded."""

    resolved: object  # humpback.models.ResolvedModel
    ref: str
    fingerprint: str


def resolve_base(ref: str | None) -> BaseModel:
    from humpback.models import resolve_model

    resolved = resolve_model(ref)
    return BaseModel(resolved=resolved, ref=pinned_ref(resolved), fingerprint=model_fingerprint(resolved))


def pinned_ref(resolved) -> str:
    """The model's reference as a fixed version: an MLflow alias moves, its version does not."""
    if resolved.kind == "mlflow":
        name = resolved.ref.removeprefix("models:/").split("@")[0].split("/")[0]
        return f"models:/{name}/{resolved.version}"
    return resolved.ref


def model_fingerprint(resolved) -> str:
    """The manifest's weight hash, else one computed over a local folder's weights; '' for a hub id."""
    from humpback.models import file_fingerprint

    if resolved.fingerprint:
        return resolved.fingerprint
    return file_fingerprint(resolved.path) if Path(resolved.path).is_dir() else ""


def run_params(data: TrainingData, settings, direction: str, base: BaseModel, truncation: Counter) -> dict:
    from humpback.training.sft import BACKWARD_TEMPLATE_VERSION, TRUNCATION_POLICY

    params = {f"train.{key}": value for key, value in dataclasses.asdict(settings).items()}
    per_device, accumulation = settings.batch_layout(data.n_examples)
    params.update({
        "train.resolved_learning_rate": settings.resolved_learning_rate(),
        "train.effective_batch_size": per_device * accumulation,
        "train.gradient_accumulation_steps": accumulation,
        "direction": direction, "dataset": data.label, "dataset.table": data.ref.table, "dataset.path": data.path,
        "dataset.version": data.version, "dataset.sha256": data.sha256, "dataset.filter": data.selection,
        "n_examples": data.n_examples,
        "truncation_policy": TRUNCATION_POLICY,
        **{f"truncation.{kind}": truncation.get(kind, 0) for kind in TRUNCATION_KINDS},
        **{f"base.{key}": value for key, value in base.resolved.lineage().items()},
        "base.pinned_ref": base.ref, "base.fingerprint": base.fingerprint,
    })
    if direction == "backward":
        params["backward_template_version"] = BACKWARD_TEMPLATE_VERSION
    return params


def delta_source(path: str, version: int):
    """MLflow's DeltaDatasetSource, except that version 0 stays in the logged source (MLflow 3.17 drops a
    falsy version, which would make the source read as 'the latest version')."""
    from mlflow.data.delta_dataset_source import DeltaDatasetSource

    class PinnedDeltaSource(DeltaDatasetSource):
        def to_dict(self):
            return {**super().to_dict(), "delta_table_version": self.delta_table_version}

    return PinnedDeltaSource(path=path, delta_table_version=version)


def log_dataset(data: TrainingData):
    """The dataset as an MLflow input: the Delta table and version as its source, our content digest. Returns the
    mlflow.data Dataset, which the model's training metrics name."""
    import mlflow
    import pandas as pd

    sha256 = data.sha256
    dataset = mlflow.data.from_pandas(pd.DataFrame(data.rows), name=data.label, digest=sha256[:DIGEST_CHARS],
                                      source=delta_source(data.path, data.version))
    mlflow.log_input(dataset, context="training", tags={
        "delta.path": data.path, "delta.version": str(data.version), "delta.filter": data.selection,
        "content_sha256": sha256})
    return dataset


def mlflow_loss_logger():
    """A TrainerCallback that logs every training log line (loss, learning rate, tokens/s) as step metrics."""
    import mlflow
    from transformers import TrainerCallback

    class MlflowStepLogger(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            numbers = {key: float(value) for key, value in (logs or {}).items()
                       if isinstance(value, (int, float)) and math.isfinite(value)}
            if numbers and state.is_world_process_zero:
                mlflow.log_metrics(numbers, step=state.global_step)

    return MlflowStepLogger()


def describe_plan(data: TrainingData, settings, direction: str, base_ref: str) -> str:
    per_device, accumulation = settings.batch_layout(data.n_examples)
    method = "full fine-tuning" if settings.full_finetune else f"LoRA r={settings.lora_r}"
    length = f"max {settings.max_steps} steps" if settings.max_steps else f"{settings.num_epochs:g} epochs"
    return (f"train: {direction} model on {data.label} ({data.n_examples} examples) from {base_ref}: {method}, "
            f"lr {settings.resolved_learning_rate():g}, batch {per_device}x{accumulation}, "
            f"max_length {settings.max_length}, {length}")


def write_model_folder(folder: Path, settings, base: BaseModel, direction: str, data: TrainingData) -> None:
    """The manifest that lets humpback.models load the folder: an adapter over the pinned base, or full weights."""
    from humpback.models import file_fingerprint, write_manifest

    lineage = {"base": base.ref, "base_fingerprint": base.fingerprint, "direction": direction,
               "dataset": data.label, "dataset_path": data.path, "dataset_sha256": data.sha256}
    if settings.full_finetune:
        write_manifest(folder, weights=".", fingerprint=file_fingerprint(folder), **lineage)
    else:
        write_manifest(folder, adapter="adapter", fingerprint=file_fingerprint(folder / "adapter"), **lineage)


def tag_version(name: str, version: int, tags: dict) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    for key, value in tags.items():
        client.set_model_version_tag(name, str(version), key, str(value))


def lineage_tags(data: TrainingData, base: BaseModel) -> dict:
    return {"dataset": data.label, "dataset.path": data.path, "dataset.version": data.version,
            "dataset.sha256": data.sha256, "base": base.ref}


def register(model_id: str, name: str, alias: str, data: TrainingData, base: BaseModel) -> int:
    """Register the LoggedModel under `name` with the alias, the version tagged with its lineage."""
    from humpback.tracking import register_logged_model

    return register_logged_model(model_id, name, alias, tags=lineage_tags(data, base))


def dev_pairs(lakehouse, data: TrainingData, limit: int) -> list[dict]:
    """The seed's dev split (at the version trained on, when that is the seed), first `limit` by example id."""
    from pyspark.sql import functions as F

    if not lakehouse.exists(SEED_TABLE):
        return []
    version = data.version if data.ref.table == SEED_TABLE else lakehouse.version(SEED_TABLE)
    dev = lakehouse.read(SEED_TABLE, version).where(F.col("split") == "dev").orderBy("example_id").limit(limit)
    return [row.asDict() for row in dev.select("example_id", "instruction", "output").collect()]


def backward_prompt_text(tokenizer, output: str, max_prompt_tokens: int) -> str:
    """The rendered backward prompt, its output text cut at the tail to fit max_prompt_tokens (as in training)."""
    from humpback.training.sft import build_messages, render_prompt

    def render(text):
        return render_prompt(tokenizer, build_messages("", text, "backward")[0])

    prompt = render(output)
    over = len(tokenizer(prompt, add_special_tokens=False)["input_ids"]) - max_prompt_tokens
    if over <= 0:
        return prompt
    output_ids = tokenizer(output, add_special_tokens=False)["input_ids"]
    return render(tokenizer.decode(output_ids[: max(0, len(output_ids) - over)]))


def generate(model, tokenizer, prompts: list[str], max_new_tokens: int, batch_size: int, progress) -> list[str]:
    """Greedy completions of rendered prompts, in batches of similar length (on a CPU the padding costs as much as
    the prompts), left-padded; a progress line after each batch (progress: a humpback.reporting.Progress)."""
    import torch

    from humpback.inference.transformers_engine import length_sorted_batches

    tokenizer.padding_side = "left"
    add_special_tokens = not getattr(tokenizer, "chat_template", None)  # a chat template writes its own
    device = next(model.parameters()).device
    model.eval()
    lengths = [len(ids) for ids in tokenizer(prompts, add_special_tokens=add_special_tokens)["input_ids"]]
    texts = [""] * len(prompts)
    for indices in length_sorted_batches(range(len(prompts)), lengths, batch_size):
        batch = tokenizer([prompts[i] for i in indices], return_tensors="pt", padding=True,
                          add_special_tokens=add_special_tokens).to(device)
        with torch.no_grad():
            generated = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                                       pad_token_id=tokenizer.pad_token_id)
        new_tokens = generated[:, batch["input_ids"].shape[1]:]
        for index, text in zip(indices, tokenizer.batch_decode(new_tokens, skip_special_tokens=True)):
            texts[index] = text.strip()
        print(progress.advance(len(indices), int(batch["attention_mask"].sum()),
                               int((new_tokens != tokenizer.pad_token_id).sum())), flush=True)
    return texts


def run_gate(lakehouse, model, tokenizer, data: TrainingData, gate: dict, max_length: int,
             model_id: str | None = None) -> dict | None:
    """Backward model on the dev split: ROUGE-L against the true instructions and the share of prompt echoes,
    logged to the active run (and to the LoggedModel `model_id`). Warns (one line) below the thresholds; returns
    the metrics, or None without dev rows."""
    import mlflow

    from humpback.evaluation.gate import backward_gate_metrics
    from humpback.reporting import Progress
    from humpback.tracking import log_model_metrics
    from humpback.training.sft import BACKWARD_TEMPLATE

    pairs = dev_pairs(lakehouse, data, int(gate["max_examples"]))
    if not pairs:
        print("gate: the seed has no dev split rows; gate skipped")
        return None
    max_new_tokens = int(gate["max_new_tokens"])
    budget = max(max_length - max_new_tokens, max_length // 2)
    prompts = [backward_prompt_text(tokenizer, pair["output"], budget) for pair in pairs]
    print(f"gate: writing instructions for {len(prompts)} dev examples", flush=True)
    predicted = generate(model, tokenizer, prompts, max_new_tokens, int(gate["batch_size"]),
                         Progress("gate", len(prompts), "examples"))
    reference = [pair["instruction"] for pair in pairs]
    metrics = backward_gate_metrics(predicted, reference, BACKWARD_TEMPLATE)
    log_model_metrics(model_id, {f"gate.{key}": float(value) for key, value in metrics.items()})
    mlflow.log_table({"example_id": [pair["example_id"] for pair in pairs], "reference": reference,
                      "predicted": predicted}, artifact_file="gate/dev_predictions.json")
    print(f"gate: ROUGE-L F1 {metrics['rougeL_f']:.3f}, prompt echoes {metrics['echo_share']:.1%} "
          f"over {metrics['n']} dev examples")
    warning = gate_warning(metrics, gate)
    if warning:
        print(f"gate: warning: {warning}", file=sys.stderr, flush=True)
    return metrics


def gate_warning(metrics: dict, gate: dict) -> str | None:
    problems = []
    if metrics["rougeL_f"] < float(gate["min_rougeL_f"]):
        problems.append(f"ROUGE-L F1 {metrics['rougeL_f']:.3f} < gate.min_rougeL_f {gate['min_rougeL_f']}")
    if metrics["echo_share"] > float(gate["max_echo_share"]):
        problems.append(f"prompt echoes {metrics['echo_share']:.1%} > gate.max_echo_share {gate['max_echo_share']}")
    if not problems:
        return None
    # True whether train runs alone or inside demo/iterate, where augmentation follows without a pause.
    return ("the backward model looks weak (" + "; ".join(problems) + "): expect weak instructions from it; its "
            "dev predictions are in its MLflow run (gate/dev_predictions.json)")


def fit(model, tokenizer, examples: list[dict], settings, folder: Path, model_id: str | None = None,
        dataset=None):
    """Train into the model folder (an `adapter` subfolder for LoRA) with step metrics on the active run; the
    summary (throughput, tokens, steps, the last logged loss) also on the LoggedModel `model_id`, measured on
    `dataset` (the training set)."""
    from humpback.tracking import log_model_metrics
    from humpback.training.trainer import train_sft

    output_dir = folder if settings.full_finetune else folder / "adapter"
    result = train_sft(model, tokenizer, examples, settings, output_dir, callbacks=[mlflow_loss_logger()])
    summary = {"train_tokens_per_second": result.tokens_per_second, "tokens_seen": result.tokens_seen,
               "steps": result.steps}
    if result.loss_history:
        summary["final_loss"] = result.loss_history[-1][1]
    log_model_metrics(model_id, summary, dataset=dataset)
    return result


def print_registered(name: str, version: int, alias: str, run_id: str, result) -> None:
    print(f"train: registered {name} version {version} as @{alias} (MLflow run {run_id}; "
          f"{result.steps} steps, {result.tokens_per_second:.0f} tokens/s)")
    print(f"train: load it with humpback.models.load_model('models:/{name}@{alias}') "
          f"or pass --model models:/{name}@{alias}")


def check_alias(alias: str) -> None:
    """MLflow's own rule for alias names (3.x: letters, digits, `_` and `-`; not `latest` nor `v<N>`, which name
    versions), applied before any work instead of after training."""
    from mlflow.exceptions import MlflowException

    try:
        from mlflow.utils.validation import _validate_model_alias_name, _validate_model_alias_name_reserved
    except ImportError:  # another MLflow: the rule as MLflow 3.17 has it
        import re

        def _validate_model_alias_name(name):
            if not re.fullmatch(r"[\w\-]{1,255}", name or ""):
                raise MlflowException(f"Invalid alias name: {name!r}. Names may only contain alphanumerics, "
                                      "underscores (_), and dashes (-).")

        def _validate_model_alias_name_reserved(name):
            if name.lower() == "latest" or re.fullmatch(r"[vV]\d+", name):
                raise MlflowException(f"alias name {name!r} is reserved.")
    try:
        _validate_model_alias_name(alias)
        _validate_model_alias_name_reserved(alias)
    except MlflowException as err:
        reason = getattr(err, "message", str(err)).strip().splitlines()[0]
        raise StageError(f"--alias {alias!r} is refused by the MLflow registry: {reason} "
                         "Choose another name, e.g. m0, m1 or myx") from None


def check_inputs(ctx: Context, args: argparse.Namespace) -> None:
    """The alias, the settings and --dataset, before the run opens (the data, then the base model, are checked
    when read)."""
    check_alias(args.alias)  # the registry would refuse it only at the end
    train_settings(ctx.config, args)
    gate_settings(ctx.config)
    parse_dataset(args.dataset)


def run(ctx: Context, args: argparse.Namespace) -> None:
    import mlflow
    import torch

    from humpback.models import load_model
    from humpback.tracking import link_prompts, log_model_files, logged_model

    settings = train_settings(ctx.config, args)
    gate = gate_settings(ctx.config)
    ref = parse_dataset(args.dataset)
    data = read_training_data(ctx.lakehouse, ref, args.direction)  # fails before any model is loaded
    print(describe_data(ctx.lakehouse, data, args.direction), flush=True)
    base = resolve_base(args.base or ctx.config.get("model", {}).get("base"))
    print(describe_plan(data, settings, args.direction, base.ref), flush=True)
    tokenizer, model = load_model(base.resolved, device="cpu", dtype=torch.float32)  # the Trainer moves it to a GPU
    examples, truncation = encode_rows(tokenizer, data.rows, args.direction, settings.max_length)
    name = REGISTERED_MODELS[args.direction]
    mlflow.set_tags({"humpback.direction": args.direction, "humpback.dataset": data.label})
    with tempfile.TemporaryDirectory(prefix="humpback-train-") as tmp:
        dataset = log_dataset(data)
        params = run_params(data, settings, args.direction, base, truncation)
        mlflow.log_params(params)
        with logged_model(f"{name}-{args.alias}", params=params, model_type=args.direction,
                          tags={"humpback.direction": args.direction, "humpback.alias": args.alias,
                                **lineage_tags(data, base)}) as trained:
            if args.direction == "backward":
                link_prompts(["backward"], model_id=trained.model_id)  # its training examples are that prompt
            result = fit(model, tokenizer, examples, settings, Path(tmp), trained.model_id, dataset)
            write_model_folder(Path(tmp), settings, base, args.direction, data)
            log_model_files(trained.model_id, tmp)
        version = register(trained.model_id, name, args.alias, data, base)
        print_registered(name, version, args.alias, mlflow.active_run().info.run_id, result)
        if args.direction == "backward" and not args.skip_gate:
            metrics = run_gate(ctx.lakehouse, result.model, tokenizer, data, gate, settings.max_length,
                               trained.model_id)
            if metrics:
                tag_version(name, version, {f"gate.{key}": value for key, value in metrics.items()})


STAGE = Stage("train", "Fine-tune a backward or forward model on a seed or training set and register it in MLflow.",
              run, options, settings=("train", "gate"), check=check_inputs,
              run_name=lambda ctx, args: f"train-{args.direction}-{args.alias}")
