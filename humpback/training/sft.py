"""SFT examples: prompt messages for both directions, tokenization with output-only loss, padding.

Forward (M0, M1, M2): system = source tag, user = instruction, assistant = output.
Backward (M_yx): user = BACKWARD_TEMPLATE filled with the output, assistant = instruction; no tag by default.

Prompts go through the tokenizer's chat template (generation prompt appended); a tokenizer without one (a base
model) gets PLAIN_HEADERS instead. The loss covers the completion tokens and EOS only: every prompt token is
labelled IGNORE_INDEX.

Truncation policy (TRUNCATION_POLICY), applied when prompt + completion + EOS exceed max_length:
1. the completion keeps whatever the prompt leaves, but never less than half of max_length; a completion cut
   this way loses its tail and its EOS (the model is not taught to stop mid-text);
2. if the prompt still does not fit, the tail of its last user message is cut and the prompt re-rendered, so
   the system tag, the template's instruction and the chat markup all survive (in the backward prompt the
   output comes last, so its end is what goes).
encode_example reports which step fired: 'none', 'completion_tail', 'prompt_tail' or 'both'.
"""

import torch

from humpback.prompts import (  # noqa: F401 - re-exported: training code names them from here
    BACKWARD_TEMPLATE,
    BACKWARD_TEMPLATE_VERSION,
    INFERENCE_TAG,
    SEED_TAG,
    WEB_TAG,
    backward_prompt,
    template_version,
)

PLAIN_HEADERS = {"system": "### System:\n", "user": "### Instruction:\n"}
PLAIN_RESPONSE_HEADER = "### Response:\n"

IGNORE_INDEX = -100
TRUNCATION_POLICY = "completion_tail_min_half_then_prompt_user_tail"
_FIT_ROUNDS = 8  # re-tokenizing a cut text can shift its length by a token or two; a few rounds settle it

DIRECTIONS = ("forward", "backward")


def build_messages(instruction: str, output: str, direction: str, tag: str | None = None):
    """(prompt_messages, completion_text) for one pair; the tag, if any, is the system message."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    user, completion = (instruction, output) if direction == "forward" else (backward_prompt(output), instruction)
    system = [{"role": "system", "content": tag}] if tag else []
    return system + [{"role": "user", "content": user}], completion


def render_prompt(tokenizer, prompt_messages) -> str:
    """The prompt text the model sees before its answer: chat template with generation prompt, or plain."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(prompt_messages, tokenize=False, add_generation_prompt=True)
    turns = [PLAIN_HEADERS[m["role"]] + m["content"] + "\n\n" for m in prompt_messages]
    return "".join(turns) + PLAIN_RESPONSE_HEADER


def _prompt_ids(tokenizer, prompt_messages):
    # a chat template writes its own special tokens; a plain prompt gets the tokenizer's usual ones (BOS)
    has_template = bool(getattr(tokenizer, "chat_template", None))
    text = render_prompt(tokenizer, prompt_messages)
    return tokenizer(text, add_special_tokens=not has_template)["input_ids"]


def _text_ids(tokenizer, text):
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def encode_example(tokenizer, prompt_messages, completion: str, max_length: int) -> dict:
    """input_ids, labels (IGNORE_INDEX on prompt tokens), attention_mask and which truncation step fired."""
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ValueError("the tokenizer has no EOS token; the completion needs one to end on")
    prompt_ids = _prompt_ids(tokenizer, prompt_messages)
    completion_ids = _text_ids(tokenizer, completion) + [eos]
    cut_completion = cut_prompt = False
    if len(prompt_ids) + len(completion_ids) > max_length:
        budget = max(max_length - len(prompt_ids), max_length // 2)
        if len(completion_ids) > budget:
            completion_ids, cut_completion = completion_ids[:budget], True
        if len(prompt_ids) + len(completion_ids) > max_length:
            prompt_ids = _fit_prompt(tokenizer, prompt_messages, max_length - len(completion_ids))
            cut_prompt = True
    return {
        "input_ids": prompt_ids + completion_ids,
        "labels": [IGNORE_INDEX] * len(prompt_ids) + completion_ids,
        "attention_mask": [1] * (len(prompt_ids) + len(completion_ids)),
        "truncation": _truncation_name(cut_completion, cut_prompt),
    }


def _truncation_name(cut_completion, cut_prompt):
    if cut_completion and cut_prompt:
        return "both"
    if cut_completion:
        return "completion_tail"
    return "prompt_tail" if cut_prompt else "none"


def _fit_prompt(tokenizer, prompt_messages, limit):
    """Prompt ids of at most `limit` tokens, made by cutting the end of the last user message."""
    *head, last = prompt_messages
    content_ids = _text_ids(tokenizer, last["content"])
    ids = _prompt_ids(tokenizer, prompt_messages)
    keep = len(content_ids)
    for _ in range(_FIT_ROUNDS):
        over = len(ids) - limit
        if over <= 0:
            return ids
        if keep == 0:
            break
        keep = max(0, keep - over)
        cut = {**last, "content": tokenizer.decode(content_ids[:keep])}
        ids = _prompt_ids(tokenizer, head + [cut])
    raise ValueError(
        f"max_length leaves {limit} tokens for the prompt, too few for its template and system message"
    )


class PadCollator:
    """Pads a batch on the right: input_ids with pad_token_id, labels with IGNORE_INDEX, attention_mask with 0.
    Other keys of the examples (e.g. 'truncation') are left out of the batch."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, examples):
        width = max(len(e["input_ids"]) for e in examples)
        fill = {"input_ids": self.pad_token_id, "labels": IGNORE_INDEX, "attention_mask": 0}
        return {
            key: torch.tensor([e[key] + [value] * (width - len(e[key])) for e in examples], dtype=torch.long)
            for key, value in fill.items()
        }
