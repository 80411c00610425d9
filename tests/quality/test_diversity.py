"""Instruction diversity: first words by the same rule in Python and in Spark, and the two ratios."""
import pytest

from humpback.quality.diversity import first_words, format_diversity, instruction_diversity

INSTRUCTIONS = ["How do I repot a cactus?", "how do I water a cactus?", "How, do... I prune roses?",
                "What is a mortgage?", "What is a mortgage?", "Explique-moi l'été à Paris", None]


def test_first_words_are_lower_cased_letter_runs():
    assert first_words("How, do... I prune roses?") == "how do i"
    assert first_words("Explique-moi l'été à Paris") == "explique moi l"
    assert first_words("  ") == "" and first_words(None) == ""
    assert first_words("one two", n=3) == "one two"


def test_spark_counts_match_the_python_rule(spark):
    frame = spark.createDataFrame([(text,) for text in INSTRUCTIONS], "instruction string")
    diversity = instruction_diversity(frame)
    present = [text for text in INSTRUCTIONS if text is not None]
    assert diversity["rows"] == 6
    assert diversity["distinct_first_words"] == len({first_words(text) for text in present}) == 3
    assert diversity["distinct_instructions"] == 5
    assert diversity["first_words_ratio"] == pytest.approx(3 / 6)
    assert diversity["distinct_ratio"] == pytest.approx(5 / 6)
    assert "3/6" in format_diversity(diversity)


def test_no_rows_give_zero_ratios(spark):
    diversity = instruction_diversity(spark.createDataFrame([], "instruction string"))
    assert diversity == {"rows": 0, "distinct_first_words": 0, "distinct_instructions": 0,
                         "first_words_ratio": 0.0, "distinct_ratio": 0.0}
