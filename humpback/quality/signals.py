"""Per-segment quality signals: plain numbers, computed once and stored; rules.py turns them into decisions.

The text measures follow Gopher (Rae et al. 2021, as implemented in datatrove's GopherQualityFilter and
GopherRepetitionFilter); the header measures follow the Humpback paper's App. E.
"""
from __future__ import annotations

import re

from humpback.quality.langid import detect_language, paragraph_language_signals
from humpback.text import jaccard, ngrams
from humpback.text import words as text_words

# Gopher's stop words: a text with fewer than two of them is rarely natural prose.
STOP_WORDS = frozenset({"the", "be", "to", "of", "and", "that", "have", "with"})
BULLETS = ("-", "•", "*", "‣", "◦", "▪", "●", "–")
ELLIPSES = ("...", "…")
PUNCTUATION = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~«»“”‘’…–—·•"

REPETITION_NGRAM = 3
# Bounds the all-pairs comparison (200 sentences: at most ~20,000 pairs, and only pairs that share an n-gram).
MAX_REPETITION_SENTENCES = 200

SENTENCE_SPLIT_RE = re.compile(r"(?<=[.!?])\s+|\n+")
LETTER_RE = re.compile(r"[^\W\d_]")
EMAIL_RE = re.compile(r"[\w.+-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63})+")  # bounded: no quadratic backtracking
# Phone numbers as written for people: optional +country code, then three groups of digits separated by
# spaces, dashes or an (area code). Dots are not separators here, so versions and IP addresses do not count.
PHONE_RE = re.compile(r"(?<![\w.])(?:\+\d{1,3}[ -]?)?(?:\(\d{2,4}\)|\d{2,4})[ -]\d{3,4}[ -]\d{3,4}(?!\w|\.\d)")
SECTION_NUMBER_RE = re.compile(r"^[\d.\s]+")

# Navigation-type headers (paper App. E: "advertisement", "forum", "quick link", "free newsletter", ...).
# Phrases flag a short header that contains them; whole-header words flag only a header that is exactly that
# word, so that "Comments" is caught but "Comments in Python source code" is not.
NAV_PHRASES = (
    "advertisement", "advertisements", "sponsored", "forum", "forums", "quick link", "quick links",
    "useful links", "newsletter", "related posts", "related articles", "related stories", "recent posts",
    "popular posts", "you may also like", "leave a comment", "leave a reply", "share this", "follow us",
    "subscribe", "sign up", "log in", "sign in", "cookie policy", "cookie settings", "cookie consent",
    "privacy policy", "terms of use", "terms of service", "all rights reserved", "skip to content", "main menu",
    "navigation",
)
NAV_HEADERS = frozenset({
    "comments", "comment", "share", "menu", "footer", "search", "archives", "categories", "tags", "login",
    "register", "contact", "contact us", "about us", "sidebar", "breadcrumbs", "copyright", "social",
    "table of contents", "contents",
})
NAV_PHRASE_RE = re.compile(r"\b(?:" + "|".join(re.escape(p) for p in NAV_PHRASES) + r")\b")
MAX_NAV_HEADER_WORDS = 6


def compute_signals(header: str, text: str, header_level: int) -> dict:
    """All signals of one segment, as a flat dict of numbers, booleans and short strings."""
    words = text.split()
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    lang, lang_score = detect_language(text)
    return {
        "header_level": header_level,
        "n_chars": len(text),
        "n_words": len(words),
        **header_signals(header),
        "repetition": max_sentence_similarity(text),
        **word_signals(text, words),
        **line_signals(lines),
        "n_emails": len(EMAIL_RE.findall(text)) if "@" in text else 0,
        "n_phones": len(PHONE_RE.findall(text)),
        "lang": lang,
        "lang_score": lang_score,
        **paragraph_language_signals(text, lang),
    }


def header_signals(header: str) -> dict:
    cased = [ch for ch in header if ch.isupper() or ch.islower()]
    n_upper = sum(ch.isupper() for ch in cased)
    return {
        "header_chars": len(header.strip()),
        "header_cap_ratio": n_upper / len(cased) if cased else 0.0,
        "header_all_caps": bool(cased) and n_upper == len(cased),
        "header_is_nav": is_nav_header(header),
    }


def is_nav_header(header: str) -> bool:
    """Whether a header names page furniture (menus, comments, newsletters, ...) rather than content."""
    words = text_words(SECTION_NUMBER_RE.sub("", header.lower()))
    if not words or len(words) > MAX_NAV_HEADER_WORDS:
        return False
    normalized = " ".join(words)
    return normalized in NAV_HEADERS or NAV_PHRASE_RE.search(normalized) is not None


def max_sentence_similarity(text: str, n: int = REPETITION_NGRAM,
                            max_sentences: int = MAX_REPETITION_SENTENCES) -> float:
    """The largest Jaccard similarity of word n-gram sets over all pairs of sentences (paper App. E).

    Sentences shorter than n words have no n-grams and take no part. Only pairs that share an n-gram can score
    above zero, so candidates come from an n-gram index instead of all pairs.
    """
    gram_sets = []
    for sentence in SENTENCE_SPLIT_RE.split(text, maxsplit=max_sentences)[:max_sentences]:
        words = text_words(sentence)
        if len(words) >= n:
            gram_sets.append(ngrams(words, n))
    best = 0.0
    seen_in: dict[tuple, list[int]] = {}
    for i, grams in enumerate(gram_sets):
        candidates = {j for gram in grams for j in seen_in.get(gram, ())}
        for j in candidates:
            best = max(best, jaccard(grams, gram_sets[j]))
        if best == 1.0:
            break
        for gram in grams:
            seen_in.setdefault(gram, []).append(i)
    return best


def word_signals(text: str, words: list[str]) -> dict:
    """Gopher's word-level ratios. Words are whitespace tokens; their length is taken without punctuation."""
    n_words = len(words)
    if not n_words:
        return {"mean_word_length": 0.0, "alpha_word_frac": 0.0, "stop_word_count": 0, "stop_word_frac": 0.0,
                "symbol_to_word_ratio": 0.0}
    stripped = [w.strip(PUNCTUATION) for w in words]
    content_lengths = [len(w) for w in stripped if w]  # Gopher's "non-symbol words"
    n_stop = sum(map(STOP_WORDS.__contains__, map(str.lower, stripped)))
    n_alpha = sum(1 for match in map(LETTER_RE.search, words) if match)
    n_symbols = text.count("#") + sum(text.count(e) for e in ELLIPSES)
    return {
        "mean_word_length": sum(content_lengths) / len(content_lengths) if content_lengths else 0.0,
        "alpha_word_frac": n_alpha / n_words,
        "stop_word_count": n_stop,
        "stop_word_frac": n_stop / n_words,
        "symbol_to_word_ratio": n_symbols / n_words,
    }


def line_signals(lines: list[str]) -> dict:
    """Line statistics over the non-empty lines."""
    n_lines = len(lines)
    if not n_lines:
        return {"n_lines": 0, "mean_line_length": 0.0, "bullet_line_frac": 0.0, "ellipsis_line_frac": 0.0,
                "duplicate_line_frac": 0.0}
    return {
        "n_lines": n_lines,
        "mean_line_length": sum(map(len, lines)) / n_lines,
        "bullet_line_frac": sum(line.startswith(BULLETS) for line in lines) / n_lines,
        "ellipsis_line_frac": sum(line.endswith(ELLIPSES) for line in lines) / n_lines,
        "duplicate_line_frac": (n_lines - len(set(lines))) / n_lines,
    }
