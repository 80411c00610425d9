"""How well a curation scorer separates good (instruction, output) pairs from bad ones, on labelled seed pairs.

The paper measured its selectors on 250 dev examples labelled by hand (about 20% positives): precision and
recall of the pairs each selector accepted (paper notes section 4.5, v1 Table 7). We have no hand labels, so the
labelled set is built from the seed's dev split, whose pairs are good by construction:

- positives (label 1), kind ``true``: every dev pair as it is;
- negatives (label 0), one of each kind per dev pair where it can be made:
  - ``swapped_instruction``: the pair's output under another dev pair's instruction (a seeded derangement, so no
    output keeps its own instruction); none below two dev pairs;
  - ``first_sentence``: the pair's output cut to its first sentence (incomplete, the rubric's score-1 case);
    skipped when that sentence is the whole output;
  - ``same_topic_output``: the output of another dev pair with the same topic (on-topic but not an answer);
    only when the rows carry a topic field (the ``seed`` table has none today) and the topic has another pair.

With n dev pairs that is n positives and at most 3n negatives (2n without topics), so positives are a quarter
to a half of the set, more than the paper's 20%: compare precision across scorers on the same set, not with
the paper's numbers directly. A negative equal to any positive (same instruction and output, e.g. from duplicate
texts in the seed) is dropped. The set depends only on the dev pairs (read in example_id order) and the seed.
Pairs labelled by hand can be added from a file (read_labelled_file); `check_report` and `summary_lines` are what
`humpback scorer-check` reports.
"""
from __future__ import annotations

import math
import random
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

TRUE, SWAPPED_INSTRUCTION, FIRST_SENTENCE, SAME_TOPIC_OUTPUT = (
    "true", "swapped_instruction", "first_sentence", "same_topic_output")
KINDS = (TRUE, SWAPPED_INSTRUCTION, FIRST_SENTENCE, SAME_TOPIC_OUTPUT)

# Paper numbers (paper notes: section 3 = v1 Table 2, section 4.5 = v1 Table 7).
# The main model trains on A5^(2) (score >= 4.5, 2nd iteration): 41,821 of 502,133 candidates, about 8.3%.
PAPER_ACCEPTANCE_SHARE = 41_821 / 502_133
# Selection quality on the paper's hand-labelled dev set (about 20% positives): (precision, recall).
PAPER_SELECTOR_PRECISION_RECALL = {"M0": (0.44, 0.09), "M1": (0.52, 0.44), "GPT-4": (0.88, 0.92)}
PAPER_POSITIVE_SHARE = 0.2

# Histogram bins 0.5 wide centred on 1, 1.5, ..., 5: integer scores and half-point means each get their own bin.
DEFAULT_SCORE_EDGES = tuple(0.75 + 0.5 * step for step in range(10))


@dataclass(frozen=True)
class LabelledPair:
    instruction: str
    output: str
    label: int  # 1: a pair the scorer should accept, 0: one it should reject
    kind: str  # one of KINDS
    instruction_id: str  # example_id of the seed pair the instruction comes from
    output_id: str  # example_id of the seed pair the output (or its first sentence) comes from
    seed: int

    def as_dict(self) -> dict:
        return asdict(self)


# ----- the labelled set -----

_SENTENCE_END = re.compile(r"[.!?]+(?=\s)|\n")
_WORD = re.compile(r"[^\W\d_]{2,}")


def first_sentence(text: str) -> str:
    """The text up to its first sentence end (., ! or ? before whitespace, or a line break); the whole text if
    none. A piece without a word (a list marker such as "1.") does not count as a sentence. A heuristic:
    abbreviations like "e.g." also end a sentence here, which still leaves an incomplete answer."""
    text = text.strip()
    for end in _SENTENCE_END.finditer(text):
        candidate = text[:end.end()].strip()
        if _WORD.search(candidate):
            return candidate
    return text


def dev_pairs(seed_pairs: Iterable[Mapping], split: str | None = "dev") -> list[Mapping]:
    """The rows of one split (all rows for split=None), in example_id order so that the input order (a Spark
    collect has none) cannot change the labelled set."""
    rows = [row for row in seed_pairs if split is None or row.get("split") == split]
    return sorted(rows, key=lambda row: row["example_id"])


def cyclic_derangement(n: int, rng: random.Random) -> list[int]:
    """A random permutation without fixed points (Sattolo's algorithm: one cycle through all n), [] below 2."""
    if n < 2:
        return []
    order = list(range(n))
    for i in range(n - 1, 0, -1):
        j = rng.randrange(i)  # j < i, never i itself: this is what rules out fixed points
        order[i], order[j] = order[j], order[i]
    return order


def _pair(instruction_row, output_row, output, label, kind, seed):
    return LabelledPair(instruction_row["instruction"], output, label, kind, instruction_row["example_id"],
                        output_row["example_id"], seed)


def swapped_instruction_negatives(rows: Sequence[Mapping], seed: int) -> list[LabelledPair]:
    order = cyclic_derangement(len(rows), random.Random(f"{seed}:{SWAPPED_INSTRUCTION}"))
    return [_pair(rows[other], row, row["output"], 0, SWAPPED_INSTRUCTION, seed)
            for row, other in zip(rows, order)]


def first_sentence_negatives(rows: Sequence[Mapping], seed: int) -> list[LabelledPair]:
    negatives = []
    for row in rows:
        cut = first_sentence(row["output"])
        if cut != row["output"].strip():
            negatives.append(_pair(row, row, cut, 0, FIRST_SENTENCE, seed))
    return negatives


def same_topic_output_negatives(rows: Sequence[Mapping], seed: int, topic_field: str | None) -> list[LabelledPair]:
    """Each pair's instruction with the output of a seeded other pair of its topic (one with a different output)."""
    if topic_field is None:
        return []
    by_topic = defaultdict(list)
    for row in rows:
        if row.get(topic_field):
            by_topic[row[topic_field]].append(row)
    rng = random.Random(f"{seed}:{SAME_TOPIC_OUTPUT}")
    negatives = []
    for row in rows:
        others = [o for o in by_topic.get(row.get(topic_field), ()) if o["output"] != row["output"]]
        if others:
            other = others[rng.randrange(len(others))]
            negatives.append(_pair(row, other, other["output"], 0, SAME_TOPIC_OUTPUT, seed))
    return negatives


def labelled_pairs(seed_pairs: Iterable[Mapping], seed: int, *, split: str | None = "dev",
                   topic_field: str | None = "topic") -> list[LabelledPair]:
    """Positives and negatives built from the seed rows of `split` (see the module docstring for the mix).
    Rows need example_id, instruction and output, plus split (unless split=None) and optionally topic_field.
    Order: all positives, then each negative kind, each in example_id order."""
    rows = dev_pairs(seed_pairs, split)
    positives = [_pair(row, row, row["output"], 1, TRUE, seed) for row in rows]
    negatives = (swapped_instruction_negatives(rows, seed) + first_sentence_negatives(rows, seed)
                 + same_topic_output_negatives(rows, seed, topic_field))
    positive_texts = {(p.instruction, p.output) for p in positives}
    return positives + [n for n in negatives if (n.instruction, n.output) not in positive_texts]


def kind_counts(pairs: Iterable[LabelledPair]) -> dict[str, int]:
    """{kind: rows} for every kind, zeros included; kinds beyond KINDS (a labelled file's) after them."""
    counts = dict.fromkeys(KINDS, 0)
    for pair in pairs:
        counts[pair.kind] = counts.get(pair.kind, 0) + 1
    return counts


# ----- a labelled file -----

LABELLED_FILE = "labelled_file"  # the kind of a pair from the user's file that names no kind of its own
_LABELS = {0: 0, 1: 1, "0": 0, "1": 1, "true": 1, "false": 0, "good": 1, "bad": 0}  # False and True look up as 0 and 1


def read_labelled_file(path: str | Path, seed: int) -> list[LabelledPair]:
    """Pairs labelled by hand: a JSONL file (or a JSON list) of {"instruction", "output", "label"} objects, label
    1 (or true, "good") for a pair the scorer should accept and 0 (false, "bad") for one it should reject, and an
    optional "kind" (default `labelled_file`). Each pair's instruction_id and output_id are the seed's example id
    of (instruction, output). A line that is not such an object is a ValueError naming the file and the line."""
    import json

    from humpback.ids import example_id

    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        try:
            records = list(enumerate(json.loads(text), start=1))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err.msg}, line {err.lineno})") from None
    else:
        records = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    records.append((number, json.loads(line)))
                except json.JSONDecodeError as err:
                    raise ValueError(f"{path} line {number}: not valid JSON ({err.msg})") from None
    pairs = []
    for number, record in records:
        where = f"{path} {'item' if text.lstrip().startswith('[') else 'line'} {number}"
        if not isinstance(record, dict):
            raise ValueError(f"{where}: expected an object with instruction, output and label")
        missing = [name for name in ("instruction", "output", "label") if name not in record]
        if missing:
            raise ValueError(f"{where}: no {', '.join(repr(name) for name in missing)}; expected objects with "
                             "'instruction', 'output' and 'label' (1 = should be accepted, 0 = rejected)")
        label = record["label"]
        label = _LABELS.get(label.strip().lower() if isinstance(label, str) else label)
        if label is None:
            raise ValueError(f"{where}: label {record['label']!r}; expected 1 or 0 (true/false, good/bad)")
        instruction, output = record["instruction"], record["output"]
        if not isinstance(instruction, str) or not isinstance(output, str) or not instruction.strip() \
                or not output.strip():
            raise ValueError(f"{where}: instruction and output must be non-empty texts")
        identity = example_id(instruction, output)
        pairs.append(LabelledPair(instruction, output, label, str(record.get("kind") or LABELLED_FILE), identity,
                                  identity, seed))
    if not pairs:
        raise ValueError(f"{path}: no labelled pairs")
    return pairs


# ----- ids -----

PAIR_ID_CHARS = CHECK_ID_CHARS = 32


def pair_id(pair: LabelledPair) -> str:
    """A labelled pair's content id: its kind, label, source ids and texts (the set's seed is in the check id)."""
    from humpback.ids import joined_hash

    return joined_hash(pair.kind, pair.label, pair.instruction_id, pair.output_id, pair.instruction, pair.output,
                       chars=PAIR_ID_CHARS)


def check_id(scorer_model: str, mode: str, seed: int, prompt_version: str, sampling: Mapping | None,
             pair_ids: Iterable[str]) -> str:
    """One check = one pinned scorer, one mode (with its sampling), one rating prompt and one labelled set (its
    pairs and the seed that built them): the same check rerun has the same id and resumes; anything else is new."""
    from humpback.ids import json_hash

    return json_hash([scorer_model, mode, int(seed), prompt_version, dict(sampling or {}), sorted(pair_ids)],
                     CHECK_ID_CHARS)


# ----- metrics -----

def _checked(scores: Sequence[float], labels: Sequence[int]) -> tuple[list[float], list[int]]:
    if len(scores) != len(labels):
        raise ValueError(f"{len(scores)} scores for {len(labels)} labels")
    if any(label not in (0, 1) for label in labels):
        raise ValueError("labels must be 0 or 1")
    if any(score is None or math.isnan(score) for score in scores):
        raise ValueError("scores must be numbers; leave unscored pairs out (and count them) before this")
    return [float(score) for score in scores], [int(label) for label in labels]


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def roc_auc(scores: Sequence[float], labels: Sequence[int]) -> float | None:
    """P(a random positive scores above a random negative), a tie counting half (Mann-Whitney U from average
    ranks); None without both classes."""
    scores, labels = _checked(scores, labels)
    positives = sum(labels)
    negatives = len(labels) - positives
    if not positives or not negatives:
        return None
    ranks = _average_ranks(scores)
    positive_rank_sum = sum(rank for rank, label in zip(ranks, labels) if label)
    return (positive_rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def _average_ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks; tied values share the mean of the ranks they span."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for position in range(start, end + 1):
            ranks[order[position]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def scorer_metrics(scores: Sequence[float], labels: Sequence[int], threshold: float) -> dict:
    """Precision and recall of accepting `score >= threshold`, ROC AUC and the confusion counts.
    precision is None when nothing is accepted, recall None without positives, auc None without both classes."""
    scores, labels = _checked(scores, labels)
    accepted = [score >= threshold for score in scores]
    tp = sum(1 for take, label in zip(accepted, labels) if take and label)
    fp = sum(accepted) - tp
    fn = sum(labels) - tp
    return {
        "threshold": threshold, "n": len(scores), "positives": sum(labels), "negatives": len(labels) - sum(labels),
        "accepted": sum(accepted), "acceptance_share": _ratio(sum(accepted), len(scores)),
        "tp": tp, "fp": fp, "fn": fn, "tn": len(scores) - tp - fp - fn,
        "precision": _ratio(tp, tp + fp), "recall": _ratio(tp, tp + fn), "auc": roc_auc(scores, labels),
    }


def acceptance_share(scores: Sequence[float], threshold: float) -> float:
    return sum(1 for score in scores if score >= threshold) / len(scores)


def threshold_for_acceptance(scores: Sequence[float], target_share: float = PAPER_ACCEPTANCE_SHARE) -> float | None:
    """The observed score t whose acceptance share (score >= t) is closest to target_share; on a tie the higher
    (stricter) t. None without scores. Default target: the paper's A5^(2) share, about 8.3%."""
    candidates = sorted(set(float(score) for score in scores), reverse=True)
    if not candidates:
        return None
    # rounded so that float noise cannot break an exact tie the wrong way
    return min(candidates, key=lambda t: round(abs(acceptance_share(scores, t) - target_share), 12))


# ----- score distribution -----

def score_histogram(scores: Sequence[float], labels: Sequence[int],
                    edges: Sequence[float] = DEFAULT_SCORE_EDGES) -> dict:
    """{"edges", "positive", "negative"}: counts per bin [edges[i], edges[i+1]) for each label, the last bin
    closed; scores outside the edges fall into the first or last bin so that none is lost."""
    scores, labels = _checked(scores, labels)
    edges = [float(edge) for edge in edges]
    if len(edges) < 2 or edges != sorted(edges):
        raise ValueError("edges must be at least two increasing values")
    counts = {1: [0] * (len(edges) - 1), 0: [0] * (len(edges) - 1)}
    for score, label in zip(scores, labels):
        counts[label][_bin(score, edges)] += 1
    return {"edges": edges, "positive": counts[1], "negative": counts[0]}


def _bin(score: float, edges: Sequence[float]) -> int:
    inner = sum(1 for edge in edges[1:-1] if score >= edge)
    return min(inner, len(edges) - 2)


def plot_score_distribution(scores: Sequence[float], labels: Sequence[int], path: str | Path,
                            edges: Sequence[float] = DEFAULT_SCORE_EDGES, title: str = "Scorer check") -> Path:
    """Side-by-side bars of score_histogram per label, written as a PNG to path."""
    from matplotlib.figure import Figure  # no pyplot: leaves the process-wide backend alone

    histogram = score_histogram(scores, labels, edges)
    edges = histogram["edges"]
    centres = [(low + high) / 2 for low, high in zip(edges, edges[1:])]
    width = min(high - low for low, high in zip(edges, edges[1:])) * 0.4
    figure = Figure(figsize=(6, 4))
    axes = figure.subplots()
    axes.bar([c - width / 2 for c in centres], histogram["positive"], width, label="positive (label 1)")
    axes.bar([c + width / 2 for c in centres], histogram["negative"], width, label="negative (label 0)")
    axes.set_xlabel("score")
    axes.set_ylabel("pairs")
    axes.set_title(title)
    axes.legend()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=100, bbox_inches="tight")
    return path


# ----- the report -----

def check_report(scores: Sequence[float], labels: Sequence[int], kinds: Sequence[str], threshold: float,
                 target_share: float = PAPER_ACCEPTANCE_SHARE) -> dict:
    """Everything a scorer check reports about scored pairs: scorer_metrics at `threshold`; the threshold that
    would accept `target_share` of them (the paper's acceptance share by default) with its precision and recall;
    the mean score of each label and of each kind."""
    metrics = scorer_metrics(scores, labels, threshold)
    paper = threshold_for_acceptance(scores, target_share) if scores else None
    at_paper = scorer_metrics(scores, labels, paper) if paper is not None else {}
    by_kind: dict[str, list[float]] = defaultdict(list)
    for score, kind in zip(scores, kinds):
        by_kind[kind].append(float(score))
    by_label = {name: [float(s) for s, label in zip(scores, labels) if label == value]
                for name, value in (("positive", 1), ("negative", 0))}
    return {
        **metrics, "target_share": target_share, "paper_threshold": paper,
        "paper_threshold_share": at_paper.get("acceptance_share"), "paper_threshold_precision": at_paper.get("precision"),
        "paper_threshold_recall": at_paper.get("recall"),
        "mean_score": {name: (sum(values) / len(values) if values else None) for name, values in by_label.items()},
        "mean_score_by_kind": {kind: sum(by_kind[kind]) / len(by_kind[kind])
                               for kind in sorted(by_kind, key=lambda k: (KINDS.index(k) if k in KINDS else len(KINDS), k))},
    }


def _shown(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def summary_lines(report: Mapping, scorer: str, mode: str, seed: int, counts: Mapping[str, int], unscored: int,
                  threshold_source: str) -> list[str]:
    """A one-screen summary of check_report: the set, precision and recall at the threshold, AUC, the paper's
    acceptance threshold, mean scores by kind, and the paper's selectors for comparison."""
    kinds = ", ".join(f"{n} {kind}" for kind, n in counts.items() if n)
    mean = report["mean_score"]
    lines = [
        f"scorer-check: {scorer} ({mode}), labelled set seed {seed}: {report['n']} pairs scored "
        f"({report['positives']} positive, {report['negatives']} negative; {kinds})"
        + (f", {unscored} without a score (left out)" if unscored else ""),
        f"  at threshold {report['threshold']:g} ({threshold_source}): precision "
        f"{_shown(report['precision']) if report['accepted'] else 'n/a (nothing accepted)'}, "
        f"recall {_shown(report['recall'])} ({report['accepted']} accepted: {report['tp']} positive, "
        f"{report['fp']} negative)",
        f"  ROC AUC {_shown(report['auc'], 3)} (0.5 = no better than chance)",
        f"  mean score: positives {_shown(mean['positive'])}, negatives {_shown(mean['negative'])}; by kind: "
        + ", ".join(f"{kind} {value:.2f}" for kind, value in report["mean_score_by_kind"].items()),
    ]
    if report["paper_threshold"] is not None:
        lines.append(
            f"  the paper's acceptance share ({100 * report['target_share']:.1f}%) needs threshold "
            f"{report['paper_threshold']:.3g} here (accepts {100 * report['paper_threshold_share']:.1f}%: precision "
            f"{_shown(report['paper_threshold_precision'])}, recall {_shown(report['paper_threshold_recall'])})")
    paper = "; ".join(f"{name} {p:.2f}/{r:.2f}" for name, (p, r) in PAPER_SELECTOR_PRECISION_RECALL.items())
    lines.append(f"  the paper's selectors (precision/recall, hand-labelled dev set, ~{100 * PAPER_POSITIVE_SHARE:.0f}% "
                 f"positives; here {100 * report['positives'] / max(1, report['n']):.0f}%): {paper}")
    return lines
