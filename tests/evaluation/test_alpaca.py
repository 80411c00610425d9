"""AlpacaEval's JSON format in and out, and evaluation prompts from JSONL."""
import json

import pytest

from humpback.evaluation.alpaca import (
    DEFAULT_EVAL_PROMPTS,
    EvalPrompt,
    ModelOutput,
    read_outputs,
    read_prompts,
    write_outputs,
)

EXPECTED = "expected a JSON list or JSONL of objects with an 'instruction' field"


def test_outputs_round_trip_in_alpaca_eval_format(tmp_path):
    outputs = [ModelOutput("Say hi.", "Hi! {braces} stay", "models:/humpback-forward@m1", "vicuna"),
               ModelOutput("Count to 2.", "1, 2", "models:/humpback-forward@m1")]
    path = write_outputs(tmp_path / "out" / "model_outputs.json", outputs)
    records = json.loads(path.read_text())
    assert records[0] == {"instruction": "Say hi.", "output": "Hi! {braces} stay",
                          "generator": "models:/humpback-forward@m1", "dataset": "vicuna"}
    assert "dataset" not in records[1]
    assert read_outputs(path) == outputs
    # an AlpacaEval outputs file is also a valid prompt file
    assert read_prompts(path) == [EvalPrompt("Say hi.", "vicuna"), EvalPrompt("Count to 2.")]


def test_prompts_read_from_jsonl(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text('{"instruction": "First?"}\n\n{"instruction": "Second?", "dataset": "mine"}\n')
    assert read_prompts(path) == [EvalPrompt("First?"), EvalPrompt("Second?", "mine")]


@pytest.mark.parametrize("content, where", [
    ('{"prompt": "What?"}\n', "line 1: no 'instruction' text"),
    ('{"instruction": "ok"}\nnot json\n', "line 2: not JSON"),
    ('[{"instruction": "ok"}, {"instruction": 3}]', "item 2: no 'instruction' text"),
    ('["just a string"]', "item 1: no 'instruction' text"),
    ('[{"instruction": ', "invalid JSON"),
    ("", "no prompts"),
])
def test_wrong_prompt_files_name_the_expected_fields(tmp_path, content, where):
    path = tmp_path / "prompts.jsonl"
    path.write_text(content)
    with pytest.raises(ValueError, match=EXPECTED) as error:
        read_prompts(path)
    assert where in str(error.value)


def test_outputs_need_all_three_fields(tmp_path):
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps([{"instruction": "Hi", "output": "Hello"}]))
    with pytest.raises(ValueError, match="item 1: no 'generator' text; expected a JSON list of objects with "
                                         "'instruction', 'output' and 'generator'"):
        read_outputs(path)


def test_the_shipped_prompts_are_enough_and_not_in_the_seed():
    prompts = read_prompts(DEFAULT_EVAL_PROMPTS)
    seed = {json.loads(line)["instruction"].strip().lower()
            for line in DEFAULT_EVAL_PROMPTS.with_name("seed.jsonl").read_text().splitlines() if line.strip()}
    instructions = [prompt.instruction.strip().lower() for prompt in prompts]
    assert len(prompts) >= 50 and len(set(instructions)) == len(instructions)
    assert not set(instructions) & seed
