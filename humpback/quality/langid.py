"""Language identification with py3langid, whose model ships inside the package (nothing is downloaded).

`detect_language` names a segment's language. `paragraph_language_signals` looks inside it: a page translated only
in part gives a segment whose paragraphs switch language, while the classifier, on the whole text, still names
the majority language with confidence.
"""
from __future__ import annotations

import re
import unicodedata
from collections import Counter
from functools import lru_cache

from py3langid.langid import MODEL_FILE, LanguageIdentifier

# The language of a segment shows in its first few thousand characters; the classifier walks every byte in Python.
MAX_CHARS = 3000
LETTER_RE = re.compile(r"[^\W\d_]")

# Paragraphs are the lines of a segment (one per HTML block), judged within the same first MAX_CHARS characters.
# The classifier reads UTF-8 bytes and guesses below about 40 of them (40 Latin letters, 20 Cyrillic, 13 CJK).
MIN_PARAGRAPH_BYTES = 40
# Code, numbers and tables say nothing about a language: a judged paragraph is at least half letters.
MIN_PARAGRAPH_LETTER_FRAC = 0.5
# "Confidently another language": the segment's own language under 1% and one other language at 50% or more.
# Real French, German, Spanish, Russian, Chinese, Japanese and Arabic paragraphs of 40 bytes give English 0.000;
# English code lines that the classifier mistakes (for Latin, Pidgin, ...) keep 1-25% English or no clear winner.
# Of the 17,000 distinct judgeable lines of the Python-docs sample, 3 pass: two lines of Dante quoted in a code
# example, and a changelog line with a contributor's name in Telugu (see _foreign_fraction).
MAX_OWN_LANG_PROB = 0.01
MIN_FOREIGN_LANG_PROB = 0.5
NO_LANGUAGE = "zxx"  # the classifier's label for text without linguistic content
# Paragraphs weigh their width as a terminal shows them: a CJK character, which carries about what two or three
# Latin letters do, counts two columns; every other character one (Cyrillic and Arabic words are about as long
# as English ones). Counted in bytes, a foreign name in Telugu would weigh three times its length.
WIDE_RE = re.compile("[\u1100-\u115f\u2e80-\ua4cf\uac00-\ud7a3\uf900-\ufaff\ufe30-\ufe4f\uff00-\uff60"
                     "\uffe0-\uffe6\U00020000-\U0003fffd]")


@lru_cache(maxsize=1)
def _identifier() -> LanguageIdentifier:
    """Loaded once per process (about half a second), then shared by every call."""
    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def detect_language(text: str) -> tuple[str, float]:
    """(ISO 639-1 code, probability in 0..1) of the text's language; ('und', 0.0) for text without letters."""
    sample = text[:MAX_CHARS]
    if not LETTER_RE.search(sample):
        return "und", 0.0
    lang, score = _identifier().classify(sample)
    return lang, float(score)


def paragraph_language_signals(text: str, lang: str) -> dict:
    """How much of the text, judged paragraph by paragraph, is in `lang` (the segment's own language).

    - lang_share: the share of the judged paragraphs' width (see WIDE_RE) that is not confidently in another
      language (1.0 when fewer than two paragraphs can be judged: the segment's language then speaks for them)
    - foreign_paragraphs: how many judged paragraphs are mostly in another language
    """
    paragraphs = [] if lang == "und" else [
        p for p in (line.strip() for line in text[:MAX_CHARS].split("\n")) if is_judgeable(p)]
    if len(paragraphs) < 2:
        return {"lang_share": 1.0, "foreign_paragraphs": 0}
    judged_width = foreign_width = foreign_paragraphs = 0
    main_script = None
    for paragraph in paragraphs:
        width = display_width(paragraph)
        judged_width += width
        if not is_foreign(paragraph, lang):
            continue
        if main_script is None:  # only segments with a foreign-looking paragraph pay for the script count
            main_script = _main_script(text[:MAX_CHARS])
        foreign = width * _foreign_fraction(paragraph, lang, main_script)
        foreign_width += foreign
        foreign_paragraphs += foreign * 2 > width
    return {"lang_share": 1.0 - foreign_width / judged_width, "foreign_paragraphs": foreign_paragraphs}


def display_width(text: str) -> int:
    return len(text) if text.isascii() else len(text) + len(WIDE_RE.findall(text))


def is_judgeable(paragraph: str) -> bool:
    """Long enough and wordy enough for the classifier's verdict to mean something."""
    if len(paragraph.encode("utf-8")) < MIN_PARAGRAPH_BYTES:
        return False
    n_visible = len(paragraph) - paragraph.count(" ")
    return sum(ch.isalpha() for ch in paragraph) >= MIN_PARAGRAPH_LETTER_FRAC * n_visible


def is_foreign(paragraph: str, lang: str) -> bool:
    """Whether the classifier is confident that the paragraph is in a language other than `lang`."""
    identifier = _identifier()
    top_lang, top_prob = identifier.classify(paragraph)
    if top_lang in (lang, NO_LANGUAGE) or top_prob < MIN_FOREIGN_LANG_PROB:
        return False
    # The full ranking costs half as much again as the verdict: only paragraphs that got this far pay for it.
    return dict(identifier.rank(paragraph)).get(lang, 0.0) < MAX_OWN_LANG_PROB


def _foreign_fraction(paragraph: str, lang: str, main_script: str) -> float:
    """How much of a foreign-looking paragraph is in another language, as a share of its letters' width.

    Letters of another script weigh two to four bytes each in the classifier's byte n-grams, so a name in
    Telugu or a word in Chinese outvotes a whole English sentence around it. They count as foreign by
    themselves, and the rest of the paragraph is judged on its own.
    """
    letters = "".join(ch for ch in paragraph if ch.isalpha())
    # Letters and the marks that go with them (Indic vowel signs are marks, not letters); punctuation stays.
    other_script = {ch for ch in set(paragraph)
                    if (ch.isalpha() or unicodedata.category(ch).startswith("M")) and _script(ch) != main_script}
    other_width = display_width("".join(ch for ch in letters if ch in other_script))
    if not other_width:  # same script, another language: French in an English segment
        return 1.0
    letters_width = display_width(letters)
    rest = "".join(ch for ch in paragraph if ch not in other_script)
    rest_width = letters_width - other_width if is_judgeable(rest) and is_foreign(rest, lang) else 0
    return (other_width + rest_width) / letters_width


def _main_script(text: str) -> str:
    """The script most of the text's letters are written in."""
    counts = Counter(_script(ch) for ch in text if ch.isalpha())
    return counts.most_common(1)[0][0] if counts else ""


@lru_cache(maxsize=4096)
def _script(ch: str) -> str:
    """The first word of the character's Unicode name: LATIN, CYRILLIC, CJK, HIRAGANA, ARABIC, TELUGU, ..."""
    return unicodedata.name(ch, "").split(" ", 1)[0]
