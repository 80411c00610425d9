"""Scorer check: the labelled set from seed dev pairs, and precision / recall / AUC against hand arithmetic."""
import pytest

from humpback.evaluation.scorer_check import (
    FIRST_SENTENCE, PAPER_ACCEPTANCE_SHARE, SAME_TOPIC_OUTPUT, SWAPPED_INSTRUCTION, TRUE, first_sentence,
    kind_counts, labelled_pairs, plot_score_distribution, roc_auc, score_histogram, scorer_metrics,
    threshold_for_acceptance)


def seed_row(example_id, output, topic=None, split="dev"):
    row = {"example_id": example_id, "instruction": f"Question {example_id}?", "output": output, "split": split,
           "source": "test"}
    if topic is not None:
        row["topic"] = topic
    return row


ROWS = [
    seed_row("a", "Boil water. Add pasta. Wait ten minutes.", topic="cooking"),
    seed_row("b", "Preheat the oven to 200 degrees.", topic="cooking"),  # one sentence: no first_sentence negative
    seed_row("c", "Paris is the capital. It lies on the Seine.", topic="geography"),
    seed_row("d", "1. Open the file.\n2. Save it.", topic="computers"),  # the only pair of its topic
    seed_row("e", "Train rows are left out. They never count.", split="train"),
]


def test_counts_by_kind_on_a_fixed_set():
    pairs = labelled_pairs(ROWS, seed=7)
    # 4 dev pairs; first sentences for a, c, d; same-topic outputs only within cooking (a <-> b)
    assert kind_counts(pairs) == {TRUE: 4, SWAPPED_INSTRUCTION: 4, FIRST_SENTENCE: 3, SAME_TOPIC_OUTPUT: 2}
    assert {p.label for p in pairs if p.kind == TRUE} == {1}
    assert {p.label for p in pairs if p.kind != TRUE} == {0}
    assert all(p.seed == 7 for p in pairs)
    assert "e" not in {p.instruction_id for p in pairs} | {p.output_id for p in pairs}


def test_negatives_are_built_as_described():
    pairs = labelled_pairs(ROWS, seed=7)
    by_id = {row["example_id"]: row for row in ROWS}
    swapped = [p for p in pairs if p.kind == SWAPPED_INSTRUCTION]
    assert all(p.instruction_id != p.output_id for p in swapped)  # a derangement
    assert sorted(p.instruction_id for p in swapped) == ["a", "b", "c", "d"]  # every instruction used once
    for p in pairs:
        assert p.instruction == by_id[p.instruction_id]["instruction"]
    cuts = {p.output_id: p.output for p in pairs if p.kind == FIRST_SENTENCE}
    assert cuts == {"a": "Boil water.", "c": "Paris is the capital.", "d": "1. Open the file."}
    topical = {(p.instruction_id, p.output_id) for p in pairs if p.kind == SAME_TOPIC_OUTPUT}
    assert topical == {("a", "b"), ("b", "a")}


def test_same_seed_same_set_and_input_order_does_not_matter():
    rows = [seed_row(str(i), f"Answer {i}. More text.") for i in range(12)]
    assert labelled_pairs(rows, seed=3) == labelled_pairs(list(reversed(rows)), seed=3)
    assert labelled_pairs(rows, seed=3) != labelled_pairs(rows, seed=4)


def test_no_negative_equals_a_positive():
    # duplicate instructions: swapping them would rebuild a true pair
    rows = [{**seed_row(str(i), f"Answer {i}. Detail."), "instruction": "Same question?"} for i in range(5)]
    rows.append(seed_row("x", "Short. Answer."))
    for seed in range(20):
        pairs = labelled_pairs(rows, seed=seed)
        positives = {(p.instruction, p.output) for p in pairs if p.label == 1}
        negatives = [(p.instruction, p.output) for p in pairs if p.label == 0]
        assert negatives and not positives.intersection(negatives)


def test_one_sentence_outputs_have_no_first_sentence_negative():
    rows = [seed_row("a", "Just one sentence."), seed_row("b", "  One more, with trailing space.  ")]
    pairs = labelled_pairs(rows, seed=0, topic_field=None)
    assert kind_counts(pairs)[FIRST_SENTENCE] == 0
    assert kind_counts(pairs)[SWAPPED_INSTRUCTION] == 2


def test_a_single_dev_pair_has_no_swap_and_no_topics_mean_no_topic_negatives():
    pairs = labelled_pairs([seed_row("a", "One. Two.")], seed=0)
    assert kind_counts(pairs) == {TRUE: 1, SWAPPED_INSTRUCTION: 0, FIRST_SENTENCE: 1, SAME_TOPIC_OUTPUT: 0}


def test_first_sentence():
    assert first_sentence("Hello there! How are you?") == "Hello there!"
    assert first_sentence("Line one\nline two.") == "Line one"
    assert first_sentence("1. Step one. 2. Step two.") == "1. Step one."
    assert first_sentence("No end mark") == "No end mark"
    assert first_sentence("Version 3.5 is out. Yes.") == "Version 3.5 is out."


# ----- metrics -----

def test_precision_recall_and_auc_by_hand():
    scores = [5, 4, 4, 3, 2, 1]
    labels = [1, 1, 0, 1, 0, 0]
    m = scorer_metrics(scores, labels, threshold=4)
    # accepted: 5 (pos), 4 (pos), 4 (neg) -> tp 2, fp 1; the positive scored 3 is missed
    assert (m["tp"], m["fp"], m["fn"], m["tn"], m["accepted"]) == (2, 1, 1, 2, 3)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    assert m["acceptance_share"] == pytest.approx(0.5)
    # positive/negative pairs: 5 beats all 3 (3), 4 ties 4 and beats 2 and 1 (2.5), 3 beats 2 and 1 (2) -> 7.5 / 9
    assert m["auc"] == pytest.approx(7.5 / 9)


def test_all_ties_give_auc_one_half_and_nothing_accepted_has_no_precision():
    assert roc_auc([3, 3, 3, 3], [1, 0, 1, 0]) == pytest.approx(0.5)
    m = scorer_metrics([1, 2], [1, 0], threshold=5)
    assert m["precision"] is None and m["recall"] == 0.0 and m["accepted"] == 0


def test_single_class_has_no_auc():
    m = scorer_metrics([5, 4, 1], [1, 1, 1], threshold=4)
    assert m["auc"] is None and m["precision"] == 1.0 and m["recall"] == pytest.approx(2 / 3)
    assert scorer_metrics([5, 1], [0, 0], threshold=4)["recall"] is None


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="scores for"):
        scorer_metrics([1, 2], [1], threshold=3)
    with pytest.raises(ValueError, match="labels must be"):
        scorer_metrics([1], [2], threshold=3)
    with pytest.raises(ValueError, match="scores must be numbers"):
        scorer_metrics([float("nan")], [1], threshold=3)


def test_threshold_for_acceptance_picks_the_closest_share():
    scores = [5] * 8 + [4.5] * 4 + [4] * 30 + [3] * 58  # shares: 5 -> 0.08, 4.5 -> 0.12, 4 -> 0.42
    assert threshold_for_acceptance(scores) == 5.0
    assert threshold_for_acceptance(scores, 0.40) == 4.0
    assert threshold_for_acceptance(scores, 0.10) == 5.0  # 0.08 and 0.12 are equally close: the stricter
    assert threshold_for_acceptance([], 0.1) is None
    assert PAPER_ACCEPTANCE_SHARE == pytest.approx(0.0833, abs=1e-4)


def test_histogram_and_plot(tmp_path):
    histogram = score_histogram([1, 1.5, 5, 5, 4.5, 0.2], [1, 0, 1, 0, 1, 0])
    assert histogram["edges"][0] == 0.75 and histogram["edges"][-1] == 5.25 and len(histogram["edges"]) == 10
    assert histogram["positive"] == [1, 0, 0, 0, 0, 0, 0, 1, 1]
    assert histogram["negative"] == [1, 1, 0, 0, 0, 0, 0, 0, 1]  # 0.2 lands in the first bin
    path = plot_score_distribution([1, 2, 5, 4], [1, 0, 1, 0], tmp_path / "plots" / "scores.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ----- a labelled file, ids and the report -----

def test_a_labelled_file_gives_pairs_with_their_labels_and_kinds(tmp_path):
    from humpback.evaluation.scorer_check import LABELLED_FILE, read_labelled_file
    from humpback.ids import example_id

    path = tmp_path / "labelled.jsonl"
    path.write_text('{"instruction": "Q?", "output": "A.", "label": 1}\n\n'
                    '{"instruction": "Q?", "output": "Nonsense.", "label": "bad", "kind": "off_topic"}\n'
                    '{"instruction": "R?", "output": "B.", "label": false}\n')
    pairs = read_labelled_file(path, seed=5)
    assert [(p.label, p.kind) for p in pairs] == [(1, LABELLED_FILE), (0, "off_topic"), (0, LABELLED_FILE)]
    assert pairs[0].instruction_id == pairs[0].output_id == example_id("Q?", "A.") and pairs[0].seed == 5
    assert kind_counts(pairs) == {TRUE: 0, SWAPPED_INSTRUCTION: 0, FIRST_SENTENCE: 0, SAME_TOPIC_OUTPUT: 0,
                                  LABELLED_FILE: 2, "off_topic": 1}
    as_list = tmp_path / "labelled.json"
    as_list.write_text('[{"instruction": "Q?", "output": "A.", "label": 1}]')
    assert read_labelled_file(as_list, seed=5) == pairs[:1]


@pytest.mark.parametrize("line, message", [
    ('{"instruction": "Q?", "output": "A."}', "line 1: no 'label'"),
    ('{"instruction": "Q?", "output": "A.", "label": 2}', "line 1: label 2; expected 1 or 0"),
    ('{"instruction": "", "output": "A.", "label": 1}', "line 1: instruction and output must be non-empty"),
    ('not json', "line 1: not valid JSON"),
    ('', "no labelled pairs"),
])
def test_a_bad_labelled_file_names_the_line(tmp_path, line, message):
    from humpback.evaluation.scorer_check import read_labelled_file

    path = tmp_path / "labelled.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(ValueError, match=message):
        read_labelled_file(path, seed=0)


def test_a_check_id_is_the_scorer_mode_prompt_and_set():
    from humpback.evaluation.scorer_check import check_id, pair_id

    pairs = labelled_pairs(ROWS, seed=7)
    ids = [pair_id(p) for p in pairs]
    assert len(set(ids)) == len(ids) and all(len(i) == 32 for i in ids)
    base = check_id("models:/humpback-forward/1", "logprob", 7, "abc", {}, ids)
    assert base == check_id("models:/humpback-forward/1", "logprob", 7, "abc", None, list(reversed(ids)))
    assert len({base, check_id("models:/humpback-forward/2", "logprob", 7, "abc", {}, ids),
                check_id("models:/humpback-forward/1", "generate", 7, "abc", {"n": 1}, ids),
                check_id("models:/humpback-forward/1", "logprob", 8, "abc", {}, ids),
                check_id("models:/humpback-forward/1", "logprob", 7, "abd", {}, ids),
                check_id("models:/humpback-forward/1", "logprob", 7, "abc", {}, ids[1:])}) == 6


def test_the_report_and_its_summary():
    from humpback.evaluation.scorer_check import check_report, summary_lines

    scores = [5, 4, 4, 3, 2, 1]
    labels = [1, 1, 0, 1, 0, 0]
    kinds = [TRUE, TRUE, SWAPPED_INSTRUCTION, TRUE, FIRST_SENTENCE, SWAPPED_INSTRUCTION]
    report = check_report(scores, labels, kinds, threshold=4, target_share=0.2)
    assert report["precision"] == pytest.approx(2 / 3) and report["auc"] == pytest.approx(7.5 / 9)
    # 0.2 of six pairs: 5 accepts 1/6 (closest), so the threshold is 5, with precision 1 and recall 1/3
    assert report["paper_threshold"] == 5.0 and report["paper_threshold_precision"] == 1.0
    assert report["paper_threshold_recall"] == pytest.approx(1 / 3)
    assert report["mean_score"] == {"positive": 4.0, "negative": pytest.approx(7 / 3)}
    assert report["mean_score_by_kind"] == {TRUE: 4.0, SWAPPED_INSTRUCTION: 2.5, FIRST_SENTENCE: 2.0}
    lines = summary_lines(report, "models:/humpback-forward@m0", "logprob", 7,
                          {TRUE: 3, SWAPPED_INSTRUCTION: 2, FIRST_SENTENCE: 1, SAME_TOPIC_OUTPUT: 0}, 1,
                          "trainset.min_score")
    text = "\n".join(lines)
    assert lines[0].startswith("scorer-check: models:/humpback-forward@m0 (logprob), labelled set seed 7: 6 pairs")
    assert "1 without a score" in lines[0] and "same_topic_output" not in lines[0]
    assert "at threshold 4 (trainset.min_score): precision 0.67, recall 0.67 (3 accepted" in text
    assert "ROC AUC 0.833" in text and "needs threshold 5" in text and "M1 0.52/0.44" in text


def test_a_summary_where_nothing_is_accepted_says_so():
    from humpback.evaluation.scorer_check import check_report, summary_lines

    report = check_report([2.0, 3.0], [1, 0], [TRUE, SWAPPED_INSTRUCTION], threshold=4.5)
    text = "\n".join(summary_lines(report, "m", "logprob", 0, {TRUE: 1, SWAPPED_INSTRUCTION: 1}, 0, "--threshold"))
    assert "precision n/a (nothing accepted), recall 0.00 (0 accepted" in text and "ROC AUC 0.000" in text
