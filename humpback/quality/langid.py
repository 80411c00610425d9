"""Language identification with py3langid, whose model ships inside the package (nothing is downloaded)."""
from __future__ import annotations

import re
from functools import lru_cache

from py3langid.langid import MODEL_FILE, LanguageIdentifier

# The language of a segment shows in its first few thousand characters; the classifier walks every byte in Python.
MAX_CHARS = 3000
LETTER_RE = re.compile(r"[^\W\d_]")


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
