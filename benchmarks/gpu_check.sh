#!/usr/bin/env bash
# benchmarks/gpu_check.sh: the transformers engine and a LoRA training step on a CUDA GPU in bf16, with tokens/s.
#
# For a lent GPU machine with PyTorch, Transformers and PEFT only: no vLLM, Spark, MLflow or network needed, and
# nothing to download. It runs from the repository root (this package's own code: humpback.inference and
# humpback.training) on the embedded model's folder. Only its small files need to travel (about 4 MB):
#   models/smollm2-135m-instruct/{config.json,generation_config.json,tokenizer.json,tokenizer_config.json,
#   chat_template.jinja}
# Without model.safetensors (538 MB: too big to carry) the model is built from config.json with random weights:
# the same architecture does the same work per token, so the rates hold; the texts are noise.
#
#   benchmarks/gpu_check.sh                  # on CUDA: bf16, 32 prompts x 128 new tokens, 3 LoRA steps of 4 x 256
#   benchmarks/gpu_check.sh --cpu            # the CPU fallback (float32, a few tokens): checks the script itself
#   benchmarks/gpu_check.sh --prompts 64 --new-tokens 256 --batch-size 32 --train-steps 5
#
# Without a CUDA GPU (and without --cpu) it stops with one line and exit code 2. PYTHON picks the interpreter
# (default: .venv/bin/python if there is one, else python3).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec "$PYTHON" - "$@" <<'PY'
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

parser = argparse.ArgumentParser(prog="benchmarks/gpu_check.sh")
parser.add_argument("--cpu", action="store_true", help="run the CPU fallback (float32, small sizes)")
parser.add_argument("--model-dir", default="models/smollm2-135m-instruct")
parser.add_argument("--prompts", type=int, default=None, help="generation prompts (GPU 32, CPU 4)")
parser.add_argument("--new-tokens", type=int, default=None, help="new tokens per prompt (GPU 128, CPU 8)")
parser.add_argument("--batch-size", type=int, default=None, help="transformers engine batch (GPU 32, CPU 4)")
parser.add_argument("--train-steps", type=int, default=None, help="LoRA steps, the first one warms up (GPU 3, CPU 2)")
parser.add_argument("--train-length", type=int, default=None, help="tokens per training example (GPU 256, CPU 64)")
args = parser.parse_args(sys.argv[1:])


def fail(message: str, code: int = 2) -> None:
    print(f"gpu_check: {message}", file=sys.stderr)
    sys.exit(code)


try:
    import torch
    import transformers
except ImportError as error:
    fail(f"needs PyTorch and Transformers ({error})")
if not args.cpu and not torch.cuda.is_available():
    fail(f"no CUDA GPU visible (torch {torch.__version__}, built for CUDA {torch.version.cuda}); "
         "run with --cpu to check the script on the CPU")
folder = Path(args.model_dir)
if not (folder / "config.json").exists():
    fail(f"{folder}/config.json is missing: carry the model folder's small files (see the header of this script)")

gpu = not args.cpu
device, dtype = ("cuda", torch.bfloat16) if gpu else ("cpu", torch.float32)
sizes = {"prompts": (32, 4), "new_tokens": (128, 8), "batch_size": (32, 4), "train_steps": (3, 2),
         "train_length": (256, 64)}
for name, (on_gpu, on_cpu) in sizes.items():
    if getattr(args, name) is None:
        setattr(args, name, on_gpu if gpu else on_cpu)

from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer  # noqa: E402

from humpback.inference.base import Request, Sampling  # noqa: E402
from humpback.inference.transformers_engine import TransformersEngine  # noqa: E402

where = torch.cuda.get_device_name(0) if gpu else "CPU (fallback, not a GPU measurement)"
print(f"gpu_check: {where}; torch {torch.__version__} (CUDA {torch.version.cuda}), transformers "
      f"{transformers.__version__}; {dtype}", flush=True)
tokenizer = AutoTokenizer.from_pretrained(folder)
weights = any(folder.glob("*.safetensors")) or any(folder.glob("*.bin"))


def load_model():
    if weights:
        return AutoModelForCausalLM.from_pretrained(folder, dtype=dtype).to(device)
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(folder), dtype=dtype).to(device)


start = time.perf_counter()
model = load_model().eval()
print(f"model: {folder} ({'its weights' if weights else 'random weights: no weights file carried'}), "
      f"{sum(p.numel() for p in model.parameters()) / 1e6:.0f}M parameters, loaded in "
      f"{time.perf_counter() - start:.1f} s", flush=True)

# ----- the transformers engine: greedy and seeded sampling, batched
engine = TransformersEngine(str(folder), tokenizer, model, batch_size=args.batch_size)
requests = [Request(messages=({"role": "user", "content": f"Write a long essay about topic number {i}: the "
                                                          f"history of bread, part {i}."},), seed=1000 + i)
            for i in range(args.prompts)]
results = {}
for name, sampling in (("greedy", Sampling(temperature=0.0, max_new_tokens=args.new_tokens)),
                       ("sampled", Sampling(temperature=0.7, top_p=0.9, max_new_tokens=args.new_tokens, seed=0))):
    engine.generate(requests[:2], Sampling(temperature=sampling.temperature, max_new_tokens=4))  # warm-up
    if gpu:
        torch.cuda.synchronize()
    start = time.perf_counter()
    generations = engine.generate(requests, sampling)
    if gpu:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    errors = [g.error for g in generations if g.error]
    if errors:
        fail(f"the engine failed on {len(errors)} of {len(generations)} prompts: {errors[0]}", 1)
    generated = sum(g.completion_tokens for g in generations)
    results[f"generate_{name}_tokens_per_s"] = generated / seconds
    print(f"transformers engine, {name}: {len(requests)} prompts, batch {args.batch_size}, {generated} tokens in "
          f"{seconds:.2f} s = {generated / seconds:.1f} generated tokens/s", flush=True)
del engine

# ----- LoRA training steps: humpback's trainer (Trainer + PEFT, bf16 mixed precision on CUDA)
from humpback.training.sft import build_messages, encode_example  # noqa: E402

seed_rows = [json.loads(line) for line in Path("data/sample/seed.jsonl").read_text().splitlines() if line.strip()]
batch = 4 if gpu else 2
examples = [encode_example(tokenizer, *build_messages(row["instruction"], row["output"], "forward"),
                           max_length=args.train_length)
            for row in seed_rows[:batch * args.train_steps]]
model.train()
try:
    from humpback.training.trainer import TrainSettings, train_sft

    settings = TrainSettings(max_steps=args.train_steps, batch_size=batch, per_device_batch_size=batch,
                             max_length=args.train_length, bf16=gpu, logging_steps=1)
    with tempfile.TemporaryDirectory() as output:
        result = train_sft(model, tokenizer, examples, settings, output)
    rate, how = result.tokens_per_second, f"humpback's trainer, {result.steps} steps, the first's warm-up included"
    losses = [round(loss, 3) for _, loss in result.loss_history]
except ImportError as error:  # no accelerate (Trainer's dependency): PEFT and a plain AdamW step instead
    from peft import LoraConfig, get_peft_model

    from humpback.training.sft import PadCollator

    peft_model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.1,
                                                  target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    optimizer = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=2e-4)
    collate = PadCollator(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id)
    losses, tokens, seconds = [], 0, 0.0
    for step in range(args.train_steps):
        inputs = {k: v.to(device) for k, v in collate(examples[step * batch:(step + 1) * batch]).items()}
        start = time.perf_counter()
        with torch.autocast(device, dtype=torch.bfloat16, enabled=gpu):
            loss = peft_model(**inputs).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if gpu:
            torch.cuda.synchronize()
        if step:  # the first step warms up
            seconds += time.perf_counter() - start
            tokens += int(inputs["attention_mask"].sum())
        losses.append(round(float(loss), 3))
    rate, how = (tokens / seconds if seconds else float("nan")), f"plain PEFT loop ({error})"
results["lora_train_tokens_per_s"] = rate
print(f"LoRA training ({how}), batch {batch} x {args.train_length} tokens: {rate:.1f} tokens/s; losses {losses}")
if gpu:
    results["peak_gpu_memory_gib"] = torch.cuda.max_memory_allocated() / 2 ** 30
print("gpu_check: " + json.dumps({key: round(value, 2) for key, value in results.items()}))
PY
