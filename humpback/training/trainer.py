"""The SFT trainer core: transformers.Trainer with PEFT LoRA (default) or full fine-tuning. No MLflow, no Spark.

Paper settings (research/paper-notes.md section 2): learning rate 1e-5 decaying linearly to 9e-6, weight decay
0.1, dropout 0.1, batch 32 or 8 below 3,000 examples. No warmup (none is reported). Adam betas (0.9, 0.95)
follow LIMA, whose settings the paper says it copies, as the reference implementation does.
LoRA's default learning rate is 2e-4 instead of 1e-5 (a rate made for full fine-tuning barely moves a fresh
adapter), with the same 0.9 end ratio. Dropout 0.1 is lora_dropout for LoRA and the model's own dropout for
full fine-tuning.
"""

import math
import time
from dataclasses import dataclass, field

import torch
from peft import LoraConfig, get_peft_model
from torch.optim.lr_scheduler import LambdaLR
from transformers import Trainer, TrainingArguments, set_seed

from humpback.training.settings import TrainSettings
from humpback.training.sft import PadCollator


@dataclass
class TrainResult:
    loss_history: list[tuple[int, float]]
    train_runtime: float
    tokens_seen: int  # real (non-pad) tokens fed to the model
    tokens_per_second: float
    steps: int
    model: object = field(repr=False)  # the trained model: the PEFT-wrapped model for LoRA


def linear_decay_schedule(optimizer, num_training_steps: int, end_ratio: float) -> LambdaLR:
    """Linear decay from the optimizer's learning rate to learning rate * end_ratio at the last step."""
    total = max(1, num_training_steps)
    return LambdaLR(optimizer, lambda step: 1.0 - (1.0 - end_ratio) * min(step, total) / total)


class _SFTTrainer(Trainer):
    """transformers.Trainer with the paper's schedule and tokens/s in every log line."""

    def __init__(self, *args, lr_end_ratio, **kwargs):
        super().__init__(*args, **kwargs)
        self.lr_end_ratio = lr_end_ratio
        self.tokens_seen = 0  # becomes a tensor on the model's device, read only when logging
        self._last_log = None  # (time, tokens) at the previous log line; set when the first step starts

    def create_scheduler(self, num_training_steps, optimizer=None):
        if self.lr_scheduler is None:
            self.lr_scheduler = linear_decay_schedule(
                optimizer or self.optimizer, num_training_steps, self.lr_end_ratio
            )
        return self.lr_scheduler

    def training_step(self, model, inputs, num_items_in_batch=None):
        if self._last_log is None:
            self._last_log = (time.perf_counter(), 0)
        # counted where the batch is trained (the dataloader runs a batch ahead) and without a GPU sync
        self.tokens_seen = self.tokens_seen + inputs["attention_mask"].sum()
        return super().training_step(model, inputs, num_items_in_batch)

    def log(self, logs, start_time=None):
        if "loss" in logs:
            now, tokens = time.perf_counter(), int(self.tokens_seen)
            then, tokens_before = self._last_log
            logs["tokens_per_second"] = round((tokens - tokens_before) / max(now - then, 1e-9), 1)
            self._last_log = (now, tokens)
        super().log(logs, start_time)


def _with_lora(model, settings):
    config = LoraConfig(
        r=settings.lora_r,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.dropout,
        target_modules=list(settings.lora_target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


def _with_dropout(model, p):
    """Sets every dropout of the model to p: nn.Dropout modules, attention dropout attributes and config."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = p
        if isinstance(getattr(module, "attention_dropout", None), float):
            module.attention_dropout = p
    for name in ("attention_dropout", "hidden_dropout", "resid_pdrop", "embd_pdrop", "attn_pdrop", "dropout"):
        if isinstance(getattr(model.config, name, None), float):
            setattr(model.config, name, p)
    return model


def _training_arguments(settings, n_examples, output_dir):
    per_device, accumulation = settings.batch_layout(n_examples)
    return TrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=per_device,
        gradient_accumulation_steps=accumulation,
        learning_rate=settings.resolved_learning_rate(),
        weight_decay=settings.weight_decay,
        adam_beta1=settings.adam_beta1,
        adam_beta2=settings.adam_beta2,
        warmup_steps=0,
        num_train_epochs=settings.num_epochs,
        max_steps=settings.max_steps if settings.max_steps else -1,
        logging_steps=settings.logging_steps,
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        seed=settings.seed,
        data_seed=settings.seed,
        bf16=settings.use_bf16(),
        train_sampling_strategy="group_by_length" if settings.group_by_length else "random",
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
        remove_unused_columns=False,
        label_names=["labels"],
        disable_tqdm=False,
    )


def _pad_token_id(tokenizer):
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def train_sft(model, tokenizer, examples, settings: TrainSettings, output_dir, callbacks=()) -> TrainResult:
    """Trains on encoded examples (encode_example dicts), saves the adapter (LoRA) or the model (full) and the
    tokenizer to output_dir, and returns the loss curve and throughput."""
    if not examples:
        raise ValueError("training set is empty: there are no examples to train on")
    set_seed(settings.seed)
    model = _with_dropout(model, settings.dropout) if settings.full_finetune else _with_lora(model, settings)
    trainer = _SFTTrainer(
        model=model,
        args=_training_arguments(settings, len(examples), output_dir),
        train_dataset=examples,
        data_collator=PadCollator(_pad_token_id(tokenizer)),
        callbacks=list(callbacks),
        lr_end_ratio=settings.lr_end_ratio,
    )
    output = trainer.train()
    model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    runtime = output.metrics["train_runtime"]
    tokens = int(trainer.tokens_seen)
    return TrainResult(
        loss_history=[(e["step"], e["loss"]) for e in trainer.state.log_history if "loss" in e],
        train_runtime=runtime,
        tokens_seen=tokens,
        tokens_per_second=tokens / runtime if runtime > 0 else math.nan,
        steps=output.global_step,
        model=model,
    )
