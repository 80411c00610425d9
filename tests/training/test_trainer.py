import pytest
import torch
from peft import PeftModel
from transformers import LlamaForCausalLM

from humpback.training.sft import SEED_TAG, build_messages, encode_example
from humpback.training.trainer import TrainSettings, linear_decay_schedule, train_sft

PAIRS = [
    ("What is Python?", "Python is an interpreted, interactive, object-oriented programming language."),
    ("How do I copy an object in Python?", "Use copy.copy() or copy.deepcopy(); lists can be sliced."),
]


def _examples(tokenizer, repeat=8):
    encoded = []
    for instruction, output in PAIRS * repeat:
        messages, completion = build_messages(instruction, output, "forward", SEED_TAG)
        encoded.append(encode_example(tokenizer, messages, completion, max_length=128))
    return encoded


def test_paper_defaults():
    settings = TrainSettings()
    assert settings.resolved_learning_rate() == 2e-4
    assert TrainSettings(full_finetune=True).resolved_learning_rate() == 1e-5
    assert settings.lr_end_ratio == 0.9 and settings.weight_decay == 0.1 and settings.dropout == 0.1
    assert settings.batch_layout(2_999) == (4, 2)
    assert settings.batch_layout(3_000) == (4, 8)
    assert TrainSettings(batch_size=2).batch_layout(10) == (2, 1)


def test_schedule_decays_linearly_to_the_end_ratio():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-5)
    schedule = linear_decay_schedule(optimizer, num_training_steps=10, end_ratio=0.9)
    rates = []
    for _ in range(11):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert rates[0] == pytest.approx(1e-5)
    assert rates[5] == pytest.approx(9.5e-6)
    assert rates[10] == pytest.approx(9e-6)


def test_empty_training_set_fails_with_one_line(tiny_model, chat_tokenizer, tmp_path):
    with pytest.raises(ValueError) as error:
        train_sft(tiny_model, chat_tokenizer, [], TrainSettings(), tmp_path)
    assert str(error.value).startswith("training set is empty:")
    assert "\n" not in str(error.value)


def _mean(values):
    return sum(values) / len(values)


def test_full_finetune_lowers_the_loss_on_a_repeated_set(tiny_model, chat_tokenizer, tmp_path):
    settings = TrainSettings(full_finetune=True, learning_rate=1e-2, max_steps=12, batch_size=4)
    result = train_sft(tiny_model, chat_tokenizer, _examples(chat_tokenizer), settings, tmp_path / "model")
    losses = [loss for _, loss in result.loss_history]
    assert [step for step, _ in result.loss_history] == list(range(1, 13))
    assert _mean(losses[-3:]) < 0.75 * _mean(losses[:3])
    assert tiny_model.model.layers[0].self_attn.attention_dropout == 0.1
    assert (tmp_path / "model" / "config.json").exists()


def test_lora_trains_and_saves_an_adapter_that_reloads(tiny_model, chat_tokenizer, tmp_path):
    # a random tiny model's frozen head leaves LoRA little room: the loss only has to go down
    settings = TrainSettings(learning_rate=3e-2, max_steps=8, batch_size=4)
    result = train_sft(tiny_model, chat_tokenizer, _examples(chat_tokenizer), settings, tmp_path / "adapter")
    losses = [loss for _, loss in result.loss_history]
    assert result.steps == 8 and _mean(losses[-2:]) < _mean(losses[:2])
    assert (tmp_path / "adapter" / "adapter_config.json").exists()
    assert (tmp_path / "adapter" / "tokenizer_config.json").exists()

    base = LlamaForCausalLM(tiny_model.config)
    reloaded = PeftModel.from_pretrained(base, tmp_path / "adapter")
    tokens = torch.tensor([_examples(chat_tokenizer, repeat=1)[0]["input_ids"]])
    result.model.eval()
    with torch.no_grad():
        expected = result.model(input_ids=tokens).logits
    # same random base weights (copied in) + the saved adapter = the trained model
    base.load_state_dict(result.model.get_base_model().state_dict(), strict=False)
    with torch.no_grad():
        assert torch.allclose(reloaded(input_ids=tokens).logits, expected, atol=1e-5)


def test_tokens_seen_counts_only_the_trained_batches(tiny_model, chat_tokenizer, tmp_path):
    examples = [{key: value[:30] for key, value in e.items() if key != "truncation"} for e in _examples(chat_tokenizer)]
    settings = TrainSettings(max_steps=3, batch_size=2, per_device_batch_size=1)
    result = train_sft(tiny_model, chat_tokenizer, examples, settings, tmp_path / "adapter")
    assert result.tokens_seen == 3 * 2 * 30  # stops mid-epoch: a batch fetched ahead is not counted
    assert result.tokens_per_second > 0


@pytest.mark.parametrize("n_examples, batch", [(2_999, 8), (3_000, 32)])
def test_the_trainer_applies_the_batch_rule_to_the_examples_it_is_given(tiny_model, chat_tokenizer, tmp_path,
                                                                      n_examples, batch):
    # Equal-length examples: one optimizer step then sees exactly `batch` x length real tokens, so the count
    # shows which batch the paper's rule chose for this many examples.
    example = {key: value[:20] for key, value in _examples(chat_tokenizer, repeat=1)[0].items() if key != "truncation"}
    settings = TrainSettings(max_steps=1, per_device_batch_size=8)
    result = train_sft(tiny_model, chat_tokenizer, [example] * n_examples, settings, tmp_path / "adapter")
    assert result.steps == 1 and result.tokens_seen == batch * 20
