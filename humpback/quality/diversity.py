"""How varied the written instructions are: distinct first three words and distinct instructions, per row.

One seed shared by every row of a call collapses a backward model's instructions onto the same openings; these
two ratios are what such a collapse moves first. Words are runs of letters and digits, lower-cased (Unicode
letters too, so a non-English instruction is not one empty word).
"""
from __future__ import annotations

from typing import Any

from humpback.text import alnum_words

FIRST_WORDS = 3
_SPARK_NON_WORD = r"[^\p{L}\p{N}]+"  # the Spark side of humpback.text.alnum_words


def first_words(text: str | None, n: int = FIRST_WORDS) -> str:
    """The first n words of `text`, lower-cased and joined by single spaces."""
    return " ".join(alnum_words(text)[:n])


def first_words_column(column: str, n: int = FIRST_WORDS):
    """`first_words` as a Spark column expression, for tables of any size."""
    from pyspark.sql import functions as F

    words = F.filter(F.split(F.regexp_replace(F.lower(F.col(column)), _SPARK_NON_WORD, " "), " "),
                     lambda word: word != "")
    return F.array_join(F.slice(words, 1, n), " ")


def instruction_diversity(frame, column: str = "instruction") -> dict[str, Any]:
    """{rows, distinct_first_words, distinct_instructions, first_words_ratio, distinct_ratio} over the non-null
    values of `column`; ratios are 0.0 for no rows."""
    from pyspark.sql import functions as F

    row = frame.where(F.col(column).isNotNull()).agg(
        F.count("*").alias("rows"),
        F.countDistinct(first_words_column(column)).alias("distinct_first_words"),
        F.countDistinct(F.col(column)).alias("distinct_instructions"),
    ).first()
    rows = int(row["rows"])
    return {"rows": rows, "distinct_first_words": int(row["distinct_first_words"]),
            "distinct_instructions": int(row["distinct_instructions"]),
            "first_words_ratio": row["distinct_first_words"] / rows if rows else 0.0,
            "distinct_ratio": row["distinct_instructions"] / rows if rows else 0.0}


def format_diversity(diversity: dict[str, Any]) -> str:
    return (f"instruction diversity: distinct first {FIRST_WORDS} words {diversity['distinct_first_words']}/"
            f"{diversity['rows']} ({diversity['first_words_ratio']:.2f}), distinct instructions "
            f"{diversity['distinct_instructions']}/{diversity['rows']} ({diversity['distinct_ratio']:.2f})")
