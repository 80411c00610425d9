"""TrainSettings: the trainer's settings, the [train] section. Kept free of torch so that checking a settings
file (humpback.settings reads these fields) does not import it."""
from dataclasses import dataclass

PAPER_LEARNING_RATE = 1e-5
LORA_LEARNING_RATE = 2e-4
PAPER_BATCH_SIZE = 32
PAPER_SMALL_BATCH_SIZE = 8
PAPER_SMALL_SET = 3_000


@dataclass(frozen=True)
class TrainSettings:
    full_finetune: bool = False
    learning_rate: float | None = None  # None: PAPER_LEARNING_RATE (full) or LORA_LEARNING_RATE (LoRA)
    lr_end_ratio: float = 0.9  # the rate decays linearly to learning_rate * lr_end_ratio (paper: 1e-5 -> 9e-6)
    weight_decay: float = 0.1
    dropout: float = 0.1
    adam_beta1: float = 0.9
    adam_beta2: float = 0.95
    batch_size: int | None = None  # effective batch; None: 32, or 8 below PAPER_SMALL_SET examples
    per_device_batch_size: int = 4  # the rest of the batch comes from gradient accumulation
    num_epochs: float = 3.0
    max_steps: int | None = None  # overrides num_epochs when set
    max_length: int = 1024  # tokens per example, for encode_example
    lora_r: int = 16
    lora_alpha: int = 32
    lora_target_modules: tuple[str, ...] = ("q_proj", "v_proj")
    seed: int = 42
    logging_steps: int = 1
    bf16: bool | None = None  # None: bf16 mixed precision when the GPU supports it, fp32 otherwise
    group_by_length: bool = False

    def resolved_learning_rate(self) -> float:
        if self.learning_rate is not None:
            return self.learning_rate
        return PAPER_LEARNING_RATE if self.full_finetune else LORA_LEARNING_RATE

    def effective_batch_size(self, n_examples: int) -> int:
        if self.batch_size is not None:
            return self.batch_size
        return PAPER_SMALL_BATCH_SIZE if n_examples < PAPER_SMALL_SET else PAPER_BATCH_SIZE

    def batch_layout(self, n_examples: int) -> tuple[int, int]:
        """(per-device batch, gradient accumulation steps) that make up the effective batch."""
        total = self.effective_batch_size(n_examples)
        per_device = min(self.per_device_batch_size, total)
        if total % per_device:
            raise ValueError(f"batch size {total} is not a multiple of per_device_batch_size {per_device}")
        return per_device, total // per_device

    def use_bf16(self) -> bool:
        if self.bf16 is not None:
            return self.bf16
        import torch

        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
