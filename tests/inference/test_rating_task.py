"""The rating task curate and scorer-check share: curate's keys and seeds unchanged, other keys passed through."""
from humpback.ids import pair_key
from humpback.inference.base import Generation, TokenScores
from humpback.inference.rating_task import generate_task, logprob_task, rating_task, row_key
from humpback.inference.seeding import row_seed

SAMPLING = {"temperature": 0.7, "top_p": 0.9, "max_new_tokens": 8, "seed": 3, "n": 1}


class Scripted:
    """A stand-in engine: every generation says `Score: 4`, every score distribution puts 0.5 on 4 and 5."""

    def __init__(self):
        self.requests = []

    def generate(self, requests, sampling):
        self.requests += requests
        return [Generation(texts=["Fine. Score: 4"], prompt_tokens=2, completion_tokens=3) for _ in requests]

    def next_token_probs(self, requests, candidates):
        self.requests += requests
        return [TokenScores(probs={"4": 0.5, "5": 0.5}, prompt_tokens=2) for _ in requests]


def test_curate_rows_keep_their_key_and_seed():
    row = {"segment_id": "s1", "instruction_hash": "h1", "instruction": "Q?", "text": "A."}
    assert row_key(row, ("segment_id", "instruction_hash")) == pair_key("s1", "h1")
    engine = Scripted()
    [rated] = generate_task(SAMPLING, {"iteration": 1})([row], engine)
    assert (rated["segment_id"], rated["instruction_hash"], rated["iteration"]) == ("s1", "h1", 1)
    assert rated["score"] == 4.0 and rated["seed"] == row_seed(3, pair_key("s1", "h1"))
    assert engine.requests[0].seed == rated["seed"] and "A." in engine.requests[0].messages[-1]["content"]


def test_other_keys_and_output_fields_pass_through():
    row = {"pair_id": "p1", "instruction": "Q?", "output": "The answer."}
    engine = Scripted()
    [rated] = rating_task("generate", {}, SAMPLING, keys=("pair_id",), output_field="output")([row], engine)
    assert rated["pair_id"] == "p1" and "segment_id" not in rated and rated["seed"] == row_seed(3, "p1")
    assert "The answer." in engine.requests[0].messages[-1]["content"]
    [scored] = logprob_task({"mode": "logprob"}, keys=("pair_id",), output_field="output")([row], Scripted())
    assert scored["pair_id"] == "p1" and scored["score"] == 4.5 and scored["status"] == "ok"
