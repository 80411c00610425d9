"""Flags on a rewritten answer: the ways a rewrite fails its purpose, named, not yet acted on.

`humpback rewrite` has a model answer a curated pair's instruction from the pair's web text (its original output),
keeping the text's facts, in an assistant's voice (Nguyen et al. 2024). A rewrite fails that purpose when:
- empty: nothing but whitespace (no other flag is computed for it)
- truncated: the token budget cut it (finish_reason `length`): the answer is unfinished
- low_overlap: it keeps too little of the original: the share of the original's distinct content words that
  occur in the rewrite (`content_overlap`) is below `min_content_overlap` ([rewrite] in conf/defaults.toml).
  Content words are humpback.text.words minus English function words (STOP_WORDS) and one-character words;
  numbers count (they are facts). A model that ignored the text and answered from its own knowledge shares few of
  them. An original without content words has nothing to keep (overlap 1.0).
- copies_original: it copies the original instead of rewriting it: the share of the rewrite's word 8-grams found
  in the original (`copied_share`) is at least `max_copied_share`; a rewrite shorter than 8 words counts as
  copied (1.0) when it occurs in the original as a whole.
- context_reference: it talks about its source instead of answering ("according to the text", "the passage
  says", "the provided article", "as mentioned in the excerpt", "the text above"). A bare "the text" is not
  enough: answers about text processing use it ("split the text on commas").
Word runs compare lower-cased word tokens (humpback.text.words), so punctuation and spacing do not hide a copy.
The training-set stage decides what a flag costs (a flagged rewrite is left out of a `rewritten` set).
"""
from __future__ import annotations

import re

from humpback.text import contains_run, ngrams, words

FLAG_NAMES = ("empty", "truncated", "low_overlap", "copies_original", "context_reference")

COPY_NGRAM = 8
DEFAULT_MIN_CONTENT_OVERLAP = 0.3
DEFAULT_MAX_COPIED_SHARE = 0.8

# English function words: what is left after them are the words that carry a text's facts.
STOP_WORDS = frozenset("""
a about above after again against all almost also although am an and another any anyone anything are around as at
be because been before being below between both but by can cannot could did do does doing done down during each
either else enough etc even ever every few for from further get gets getting got had has have having he her here
hers herself him himself his how however i if in into is it its itself just least less like many may me might more
most much must my myself neither no nor not now of off often on once one only onto or other others otherwise our
ours ourselves out over own per perhaps quite rather really same several shall she should so some something such
than that the their theirs them themselves then there therefore these they this those though through thus to too
toward towards under until up upon us usually very via was we well were what whatever when whenever where whereas
whether which while who whom whose why will with within without would yet you your yours yourself yourselves
""".split())

_SOURCE = r"(?:text|passage|article|excerpt|document|paragraph|snippet|extract|web\s*page)"
_QUALIFIER = r"(?:given|provided|original|above|preceding|accompanying|quoted|source|supplied|web)"
_CONTEXT_REFERENCE = re.compile(
    # "according to the text", "based on the passage", "as mentioned in the provided article"
    rf"\b(?:according\s+to|based\s+on|as\s+(?:stated|mentioned|described|explained|noted|shown|discussed|outlined|"
    rf"said|given|written|suggested)\s+in|(?:stated|mentioned|described|explained|noted|discussed|outlined)\s+in)"
    rf"\s+(?:the|this|that)\s+(?:{_QUALIFIER}\s+)?{_SOURCE}s?\b"
    # "the text says", "the passage does not mention", "this article explains"
    rf"|\b(?:the|this)\s+(?:{_QUALIFIER}\s+)?{_SOURCE}\s+(?:says|said|states|stated|mentions|mentioned|describes|"
    rf"explains|notes|suggests|discusses|provides|gives|lists|claims|does\s+not|doesn't|doesn\u2019t|is\s+about|"
    rf"talks|focuses|highlights|emphasizes|emphasises|refers|recommends|argues|covers|goes\s+on)\b"
    # "the provided text", "the original passage", "the above article"
    rf"|\bthe\s+{_QUALIFIER}\s+(?:text|passage|article|excerpt|document|paragraph|snippet|extract)s?\b"
    # "the text above", "the passage provided"
    rf"|\bthe\s+{_SOURCE}s?\s+(?:above|below|provided|given|supplied)\b"
    # "the passage", "the excerpt" alone - but not "the passage of time"
    r"|\bthe\s+(?:passage|excerpt)s?\b(?!\s+of\b)"
    # "the author says"
    r"|\bthe\s+(?:author|writer)\s+(?:says|states|mentions|explains|suggests|notes|recommends|argues|writes|"
    r"describes|claims)\b",
    re.IGNORECASE,
)


def content_words(text: str | None) -> set[str]:
    """The distinct words of `text` that carry its facts: no function words, no one-character words."""
    return {word for word in words(text) if len(word) > 1 and word not in STOP_WORDS}


def content_overlap(rewrite: str | None, original: str | None) -> float:
    """The share of the original's distinct content words that occur in the rewrite (1.0: nothing to keep)."""
    kept = content_words(original)
    if not kept:
        return 1.0
    return len(kept & content_words(rewrite)) / len(kept)


def copied_share(rewrite: str | None, original: str | None) -> float:
    """The share of the rewrite's distinct word 8-grams found in the original; a rewrite of fewer than 8 words is
    1.0 when it occurs in the original as a whole, else 0.0 (0.0 for an empty rewrite)."""
    tokens, original_tokens = words(rewrite), words(original)
    if not tokens:
        return 0.0
    grams = ngrams(tokens, COPY_NGRAM)
    if not grams:
        return 1.0 if contains_run(original_tokens, tokens) else 0.0
    return len(grams & ngrams(original_tokens, COPY_NGRAM)) / len(grams)


def refers_to_source(rewrite: str | None) -> bool:
    """Whether the rewrite talks about the text it was written from (the rule in the module docstring)."""
    return bool(_CONTEXT_REFERENCE.search(rewrite or ""))


def rewrite_measures(rewrite: str | None, original: str | None) -> dict[str, float]:
    """{content_overlap, copied_share} of a rewrite against its original, as stored in `rewrites`."""
    return {"content_overlap": content_overlap(rewrite, original), "copied_share": copied_share(rewrite, original)}


def rewrite_flags(rewrite: str | None, original: str | None, min_content_overlap: float = DEFAULT_MIN_CONTENT_OVERLAP,
                  max_copied_share: float = DEFAULT_MAX_COPIED_SHARE, truncated: bool = False) -> list[str]:
    """The names of the flags that apply to `rewrite` (written from `original`, cut by the token budget when
    `truncated`), in FLAG_NAMES order."""
    text = (rewrite or "").strip()
    if not text:
        return ["empty", "truncated"] if truncated else ["empty"]
    measures = rewrite_measures(text, original)
    raised = {
        "truncated": truncated,
        "low_overlap": measures["content_overlap"] < min_content_overlap,
        "copies_original": measures["copied_share"] >= max_copied_share,
        "context_reference": refers_to_source(text),
    }
    return [name for name in FLAG_NAMES if raised.get(name)]
