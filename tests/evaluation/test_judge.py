"""The pairwise judge: verdict parsing and the order swap that cancels position bias (a real judge runs in
tests/stages/test_evaluate.py)."""
import pytest

from humpback.evaluation.judge import combine, judge_pairs, judge_prompt, parse_verdict
from humpback.evaluation.winrate import win_rate
from humpback.inference.base import Generation, Sampling, TokenScores

SAMPLING = Sampling(temperature=0.0, max_new_tokens=16)
INSTRUCTIONS = ["Name a colour.", "Say hello.", "Count to three."]


class FakeJudge:
    """A test double of the Engine interface: replies computed from the judge prompt's two answers."""

    kind, model_ref = "fake", "fake-judge"

    def __init__(self, decide, verdict_probs=None):
        self.decide = decide
        self.verdict_probs = verdict_probs
        self.prompts: list[str] = []
        self.prefixes: list[str] = []

    def generate(self, requests, sampling):
        replies = []
        for request in requests:
            prompt = request.messages[-1]["content"]
            self.prompts.append(prompt)
            answer_a = prompt.split("\nAnswer A:\n", 1)[1].split("\n\nAnswer B:\n", 1)[0]
            answer_b = prompt.split("\n\nAnswer B:\n", 1)[1].split("\n\nCompare the two answers", 1)[0]
            replies.append(self.decide(answer_a, answer_b))
        return replies

    def next_token_probs(self, requests, candidates):
        assert self.verdict_probs is not None, "only a reply without a verdict asks for token probabilities"
        self.prefixes += [request.assistant_prefix for request in requests]
        return [TokenScores(probs=dict(self.verdict_probs)) for _ in requests]

    def close(self):
        pass


def reply(text):
    return Generation(texts=[text])


def prefers_longer(answer_a, answer_b):
    if len(answer_a) == len(answer_b):
        return reply("Both are equally long.\nWinner: tie")
    return reply("The longer one is better.\nWinner: " + ("A" if len(answer_a) > len(answer_b) else "B"))


@pytest.mark.parametrize("text, verdict", [
    ("Both are fine.\nWinner: A", "A"),
    ("**Winner:** b.", "B"),
    ("winner: Tie", "tie"),
    ("Winner: **B**", "B"),
    ("Winner: Answer A", "A"),
    ("Winner: A\nOn reflection:\nWinner: B", "B"),
    ("Winner: A\nWinner: neither", None),
    ("Winner: A is better", None),
    ("I cannot decide.", None),
    ("", None),
])
def test_parse_verdict_reads_the_last_winner_line(text, verdict):
    assert parse_verdict(text) == verdict


@pytest.mark.parametrize("model_first, model_second, outcome", [
    ("A", "B", "win"), ("B", "A", "loss"), ("A", "A", "tie"), ("B", "B", "tie"),
    ("tie", "tie", "tie"), ("A", "tie", "tie"), (None, "B", "tie"), ("A", None, "tie"),
])
def test_both_orders_must_agree_for_a_win_or_a_loss(model_first, model_second, outcome):
    assert combine(model_first, model_second) == outcome


def test_a_judge_that_always_picks_the_first_answer_gives_only_ties():
    judge = FakeJudge(lambda a, b: reply("Winner: A"))
    judgments = judge_pairs(judge, INSTRUCTIONS, ["red", "hi", "1 2 3"], ["blue!", "hello", "one"], SAMPLING)
    result = win_rate([j.outcome for j in judgments], sum(j.unparsed for j in judgments))
    assert (result.wins, result.ties, result.losses, result.unparsed) == (0, 3, 0, 0)
    assert result.win_rate == 0.5


def test_a_judge_that_prefers_the_longer_answer_is_consistent_in_both_orders():
    judge = FakeJudge(prefers_longer)
    model = ["a long red colour", "hi", "one, two, three"]
    baseline = ["red", "hello there", "1 2 3 ..... !"]  # model longer, shorter, longer
    judgments = judge_pairs(judge, INSTRUCTIONS, model, baseline, SAMPLING)
    assert [j.outcome for j in judgments] == ["win", "loss", "win"]
    assert [(j.model_first_verdict, j.model_second_verdict) for j in judgments] == [("A", "B"), ("B", "A"), ("A", "B")]
    # The first three requests show the model's answer as A, the next three as B.
    assert "Answer A:\na long red colour" in judge.prompts[0] and "Answer B:\na long red colour" in judge.prompts[3]


def test_unreadable_and_failed_verdicts_are_ties_counted_separately():
    failures = iter([reply("Winner: A"), Generation(error="prompt too long"), reply("no verdict"), reply("Winner: B")])
    judge = FakeJudge(lambda a, b: next(failures))
    judgments = judge_pairs(judge, INSTRUCTIONS[:2], ["x", "y"], ["u", "v"], SAMPLING, constrained_fallback=False)
    assert [j.outcome for j in judgments] == ["tie", "tie"]
    assert [j.unparsed for j in judgments] == [True, True]
    assert judgments[0].error is None and judgments[1].error == "prompt too long"


def test_a_reply_without_a_verdict_is_completed_from_the_judges_distribution():
    replies = iter([reply("Answer A names a colour."), reply("Winner: B")])
    judge = FakeJudge(lambda a, b: next(replies), verdict_probs={"A": 0.7, "B": 0.2, "tie": 0.1})
    [judgment] = judge_pairs(judge, INSTRUCTIONS[:1], ["red"], ["hello"], SAMPLING)
    assert judge.prefixes == ["Answer A names a colour.\nWinner:"]  # its own reasoning, then the verdict
    assert (judgment.model_first_verdict, judgment.model_second_verdict) == ("A", "B")
    assert judgment.outcome == "win" and judgment.constrained == 1 and not judgment.unparsed


def test_answers_are_inserted_as_text_never_as_template_fields():
    prompt = judge_prompt("Show {answer_b}", "Use {answer_b} and {instruction}", "B text")
    assert "Instruction:\nShow {answer_b}\n" in prompt
    assert "Answer A:\nUse {answer_b} and {instruction}\n" in prompt and "Answer B:\nB text\n" in prompt

