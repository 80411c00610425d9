"""N-gram overlap between training texts and evaluation prompts (decontamination).

The paper does not decontaminate its web data against the evaluation prompts (paper-notes 4.8); we do, for the
instructions and outputs of curated pairs and for the seed rows alike. A text's words are its runs of ASCII
letters and digits, lower-cased; its grams are the distinct runs of `n` consecutive words (a text shorter than
`n` words is one gram of all its words).

`eval_overlap(text, index)` is the signal the SQL thresholds (registered as the Spark SQL function
`eval_overlap`): the largest of
- the share of the text's grams found among the evaluation prompts' grams (an instruction copied from a prompt),
- for each evaluation prompt of at least `n` words, the share of that prompt's grams found in the text (a prompt
  pasted into a long output),
- 1.0 when an evaluation prompt shorter than `n` words (three words or more) occurs inside the text; one- and
  two-word prompts match only a text of exactly those words (else "hello" would match every greeting).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from humpback.text import ascii_words, shingles

DEFAULT_NGRAM = 8
words = ascii_words  # decontamination's words (humpback.text says why they are ASCII)


def ngrams(text: str, n: int = DEFAULT_NGRAM) -> set[str]:
    """The text's distinct word n-grams (shingles: a shorter text is one gram), each joined by single spaces."""
    return {" ".join(gram) for gram in shingles(ascii_words(text), n)}


MIN_CONTAINED_PROMPT_WORDS = 3


@dataclass(frozen=True)
class EvalIndex:
    """The evaluation prompts' n-grams, indexed for `eval_overlap`."""

    n: int
    grams: frozenset[str]
    prompt_sizes: tuple[int, ...]  # distinct grams of each prompt of at least n words
    gram_prompts: dict[str, tuple[int, ...]] = field(hash=False, compare=False)  # gram -> those prompts
    short_prompts: tuple[str, ...] = ()  # prompts shorter than n words, as their words joined by spaces


def build_index(prompts: Iterable[str], n: int = DEFAULT_NGRAM) -> EvalIndex:
    sizes: list[int] = []
    gram_prompts: dict[str, list[int]] = {}
    short: set[str] = set()
    for prompt in prompts:
        tokens = ascii_words(prompt)
        if not tokens:
            continue
        if len(tokens) < n:
            short.add(" ".join(tokens))
            continue
        for gram in ngrams(prompt, n):
            gram_prompts.setdefault(gram, []).append(len(sizes))
        sizes.append(len(ngrams(prompt, n)))
    grams = frozenset(gram_prompts) | frozenset(short)
    return EvalIndex(n=n, grams=grams, prompt_sizes=tuple(sizes),
                     gram_prompts={gram: tuple(ids) for gram, ids in gram_prompts.items()},
                     short_prompts=tuple(sorted(short)))


def eval_overlap(text: str | None, index: EvalIndex) -> float:
    """How much of `text` comes from the evaluation prompts (0..1), by the rule in the module docstring."""
    tokens = ascii_words(text)
    if not tokens:
        return 0.0
    joined = f" {' '.join(tokens)} "
    for prompt in index.short_prompts:
        if joined == f" {prompt} " or (len(prompt.split()) >= MIN_CONTAINED_PROMPT_WORDS and f" {prompt} " in joined):
            return 1.0
    grams = ngrams(text or "", index.n)
    own = len(grams & index.grams) / len(grams)
    found = Counter(prompt for gram in grams for prompt in index.gram_prompts.get(gram, ()))
    theirs = max((count / index.prompt_sizes[prompt] for prompt, count in found.items()), default=0.0)
    return max(own, theirs)


def register_eval_overlap(spark, index: EvalIndex, name: str = "eval_overlap") -> None:
    """`name(text)` as a Spark SQL function returning `eval_overlap(text, index)`."""
    spark.udf.register(name, lambda text: eval_overlap(text, index), "double")
