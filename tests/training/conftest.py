"""Tiny tokenizers and a tiny model built offline, so training tests need no downloaded weights."""

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from humpback.training.sft import BACKWARD_TEMPLATE

CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<s>"]
CORPUS = [
    BACKWARD_TEMPLATE,
    "What is Python? Python is an interpreted, interactive, object-oriented programming language.",
    "How do I copy an object in Python? Use copy.copy() or copy.deepcopy(); lists can be sliced.",
    "Answer in the style of an AI Assistant. Answer with knowledge from web search.",
    "### System: ### Instruction: ### Response: system user assistant Text:",
]


def _byte_level_bpe():
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator(CORPUS, trainer)
    return tokenizer


@pytest.fixture(scope="session")
def chat_tokenizer():
    """ChatML-style tokenizer like SmolLM2-Instruct's: EOS is <|im_end|>, no BOS."""
    return PreTrainedTokenizerFast(
        tokenizer_object=_byte_level_bpe(),
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=CHATML,
    )


@pytest.fixture(scope="session")
def plain_tokenizer():
    """Base-model tokenizer without a chat template that adds a BOS token, like Llama's."""
    backend = _byte_level_bpe()
    bos = backend.token_to_id("<s>")
    backend.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", bos)])
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="<|endoftext|>")


@pytest.fixture
def tiny_model(chat_tokenizer):
    """A randomly initialised two-layer Llama with q_proj/v_proj, small enough to train in seconds on a CPU."""
    config = LlamaConfig(
        vocab_size=len(chat_tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=256,
        eos_token_id=chat_tokenizer.eos_token_id,
        pad_token_id=chat_tokenizer.pad_token_id,
    )
    return LlamaForCausalLM(config)
