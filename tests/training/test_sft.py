from pathlib import Path

import pytest
from transformers import AutoTokenizer

from humpback.training.sft import (
    BACKWARD_TEMPLATE,
    BACKWARD_TEMPLATE_VERSION,
    IGNORE_INDEX,
    INFERENCE_TAG,
    SEED_TAG,
    WEB_TAG,
    PadCollator,
    build_messages,
    encode_example,
    render_prompt,
    template_version,
)

EMBEDDED_MODEL = Path(__file__).resolve().parents[2] / "models" / "smollm2-135m-instruct"
INSTRUCTION = "What is Python?"
OUTPUT = "Python is an interpreted, interactive, object-oriented programming language."


def _ids(tokenizer, text):
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def test_forward_puts_the_tag_in_the_system_message():
    messages, completion = build_messages(INSTRUCTION, OUTPUT, "forward", SEED_TAG)
    assert messages == [{"role": "system", "content": SEED_TAG}, {"role": "user", "content": INSTRUCTION}]
    assert completion == OUTPUT


def test_forward_without_tag_has_no_system_message():
    messages, _ = build_messages(INSTRUCTION, OUTPUT, "forward", None)
    assert [m["role"] for m in messages] == ["user"]


def test_backward_asks_for_the_instruction_of_the_output():
    messages, completion = build_messages(INSTRUCTION, OUTPUT, "backward")
    assert messages == [{"role": "user", "content": BACKWARD_TEMPLATE.format(output=OUTPUT)}]
    assert messages[0]["content"].endswith(OUTPUT)
    assert completion == INSTRUCTION


def test_unknown_direction_is_refused():
    with pytest.raises(ValueError, match="direction"):
        build_messages(INSTRUCTION, OUTPUT, "sideways")


def test_tags_and_template_version():
    assert INFERENCE_TAG == f"{SEED_TAG} {WEB_TAG}"
    assert BACKWARD_TEMPLATE_VERSION == template_version(BACKWARD_TEMPLATE)
    assert len(BACKWARD_TEMPLATE_VERSION) == 12
    assert template_version(BACKWARD_TEMPLATE + " ") != BACKWARD_TEMPLATE_VERSION


def test_chat_template_masks_every_prompt_token(chat_tokenizer):
    messages, completion = build_messages(INSTRUCTION, OUTPUT, "forward", SEED_TAG)
    example = encode_example(chat_tokenizer, messages, completion, max_length=512)
    prompt = _ids(chat_tokenizer, render_prompt(chat_tokenizer, messages))
    answer = _ids(chat_tokenizer, OUTPUT) + [chat_tokenizer.eos_token_id]
    assert example["input_ids"] == prompt + answer
    assert example["labels"] == [IGNORE_INDEX] * len(prompt) + answer
    assert example["attention_mask"] == [1] * len(prompt + answer)
    assert example["truncation"] == "none"


def test_chat_prompt_carries_the_tag_and_ends_with_the_generation_prompt(chat_tokenizer):
    messages, _ = build_messages(INSTRUCTION, OUTPUT, "forward", SEED_TAG)
    text = render_prompt(chat_tokenizer, messages)
    assert text.startswith(f"<|im_start|>system\n{SEED_TAG}<|im_end|>\n")
    assert text.endswith("<|im_start|>assistant\n")


def test_plain_template_masks_bos_and_prompt(plain_tokenizer):
    messages, completion = build_messages(INSTRUCTION, OUTPUT, "forward", SEED_TAG)
    text = render_prompt(plain_tokenizer, messages)
    assert text == f"### System:\n{SEED_TAG}\n\n### Instruction:\n{INSTRUCTION}\n\n### Response:\n"
    example = encode_example(plain_tokenizer, messages, completion, max_length=512)
    prompt = [plain_tokenizer.bos_token_id] + _ids(plain_tokenizer, text)
    answer = _ids(plain_tokenizer, OUTPUT) + [plain_tokenizer.eos_token_id]
    assert example["input_ids"] == prompt + answer
    assert example["labels"] == [IGNORE_INDEX] * len(prompt) + answer


def test_backward_example_trains_on_the_instruction_only(chat_tokenizer):
    messages, completion = build_messages(INSTRUCTION, OUTPUT, "backward")
    example = encode_example(chat_tokenizer, messages, completion, max_length=512)
    kept = [t for t in example["labels"] if t != IGNORE_INDEX]
    assert kept == _ids(chat_tokenizer, INSTRUCTION) + [chat_tokenizer.eos_token_id]


def test_long_completion_loses_its_tail_and_eos(chat_tokenizer):
    messages, completion = build_messages(INSTRUCTION, OUTPUT * 40, "forward", SEED_TAG)
    example = encode_example(chat_tokenizer, messages, completion, max_length=128)
    prompt = _ids(chat_tokenizer, render_prompt(chat_tokenizer, messages))
    assert example["truncation"] == "completion_tail"
    assert len(example["input_ids"]) == 128
    assert example["input_ids"][: len(prompt)] == prompt
    assert example["labels"][len(prompt) :] == _ids(chat_tokenizer, completion)[: 128 - len(prompt)]
    assert chat_tokenizer.eos_token_id not in example["labels"]


def test_long_backward_prompt_loses_the_end_of_its_text(chat_tokenizer):
    messages, completion = build_messages(INSTRUCTION, OUTPUT * 40, "backward")
    example = encode_example(chat_tokenizer, messages, completion, max_length=128)
    assert example["truncation"] == "prompt_tail"
    assert len(example["input_ids"]) <= 128
    text = chat_tokenizer.decode(example["input_ids"])
    assert text.startswith("<|im_start|>user\nBelow is a text.")  # the template's instruction survives
    assert text.endswith(INSTRUCTION + "<|im_end|>")  # the whole completion and its EOS survive
    assert [t for t in example["labels"] if t != IGNORE_INDEX][-1] == chat_tokenizer.eos_token_id


def test_both_too_long_cuts_both_sides(chat_tokenizer):
    messages, completion = build_messages(OUTPUT * 40, OUTPUT * 40, "forward", SEED_TAG)
    example = encode_example(chat_tokenizer, messages, completion, max_length=128)
    assert example["truncation"] == "both"
    assert len(example["input_ids"]) <= 128
    assert sum(t != IGNORE_INDEX for t in example["labels"]) == 64  # half of max_length for the completion
    assert chat_tokenizer.decode(example["input_ids"]).startswith(f"<|im_start|>system\n{SEED_TAG}")


def test_collator_pads_right():
    collate = PadCollator(pad_token_id=0)
    batch = collate(
        [
            {"input_ids": [5, 6, 7], "labels": [-100, 6, 7], "attention_mask": [1, 1, 1], "truncation": "none"},
            {"input_ids": [8], "labels": [8], "attention_mask": [1], "truncation": "none"},
        ]
    )
    assert set(batch) == {"input_ids", "labels", "attention_mask"}
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["labels"].tolist() == [[-100, 6, 7], [8, -100, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]


@pytest.mark.skipif(not EMBEDDED_MODEL.exists(), reason="models/ is built by make setup")
def test_embedded_model_tokenizer_trains_on_the_answer_only():
    tokenizer = AutoTokenizer.from_pretrained(EMBEDDED_MODEL)
    messages, completion = build_messages(INSTRUCTION, OUTPUT, "forward", SEED_TAG)
    example = encode_example(tokenizer, messages, completion, max_length=512)
    kept = [t for t in example["labels"] if t != IGNORE_INDEX]
    assert tokenizer.decode(kept) == OUTPUT + tokenizer.eos_token
    assert tokenizer.decode(example["input_ids"]).startswith(f"<|im_start|>system\n{SEED_TAG}<|im_end|>")
