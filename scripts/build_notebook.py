"""Writes notebooks/explore.ipynb from the cells below (kept as code so reviews see plain Python)."""
from pathlib import Path

import nbformat

CELLS = [
    ("markdown", """# Exploring the humpback lakehouse

Every table of the pipeline is a Delta table; this notebook queries them with Spark SQL and plots what a person
would rather look at than read. Point it at a lakehouse with `HUMPBACK_LAKEHOUSE` (default `./lakehouse`)."""),
    ("code", """import os
import matplotlib.pyplot as plt
from humpback.spark import get_spark
from humpback.lakehouse import Lakehouse

spark = get_spark({"conf": {"spark.ui.enabled": "false"}})
lakehouse = Lakehouse(spark, os.environ.get("HUMPBACK_LAKEHOUSE"))
tables = lakehouse.register_tables()
print(lakehouse.root, tables)

def sql(query, **params):
    \"\"\"Spark SQL with named parameters, as a pandas frame.\"\"\"
    return spark.sql(query, args=params or None).toPandas()"""),
    ("markdown", "## Segments: what the rules kept and why the rest was dropped"),
    ("code", """if "segments" in tables:
    reasons = sql("SELECT coalesce(drop_reason, 'kept') AS reason, count(*) AS n FROM segments GROUP BY 1 ORDER BY n DESC")
    ax = reasons.plot.barh(x="reason", y="n", legend=False, title="Segments by drop reason")
    ax.invert_yaxis()
    plt.show()
    lengths = sql("SELECT n_chars, drop_reason IS NULL AS kept FROM segments WHERE n_chars <= 6000")
    for kept, group in lengths.groupby("kept"):
        plt.hist(group["n_chars"], bins=40, alpha=0.6, label="kept" if kept else "dropped")
    plt.axvline(600, color="grey", linestyle=":"); plt.axvline(3000, color="grey", linestyle=":")
    plt.legend(); plt.title("Segment length (characters)"); plt.show()
    display(sql("SELECT header, n_chars, signals.lang_score, signals.repetition FROM segments WHERE drop_reason IS NULL LIMIT 5"))"""),
    ("markdown", "## Candidates: instructions written by the backward model, and their flags"),
    ("code", """if "candidates" in tables:
    display(sql("SELECT status, count(*) AS n FROM candidates GROUP BY 1"))
    display(sql("SELECT flag, count(*) AS n FROM candidates LATERAL VIEW explode(flags) f AS flag GROUP BY 1 ORDER BY n DESC"))
    display(sql("SELECT instruction FROM candidates WHERE status = 'ok' AND size(flags) = 0 LIMIT 5"))"""),
    ("markdown", "## Ratings: the score distribution of every iteration"),
    ("code", """if "ratings" in tables:
    scores = sql("SELECT iteration, mode, score FROM ratings WHERE score IS NOT NULL")
    for (iteration, mode), group in scores.groupby(["iteration", "mode"]):
        plt.hist(group["score"], bins=[1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5, 5, 5.01], alpha=0.6, label=f"iteration {iteration} ({mode})")
    plt.axvline(4.5, color="black", linestyle="--", label="A5 threshold (4.5)")
    plt.legend(); plt.title("Scores per iteration"); plt.xlabel("score"); plt.show()
    display(sql("SELECT iteration, mode, parse_status, count(*) AS n, avg(score) AS mean_score FROM ratings GROUP BY 1, 2, 3 ORDER BY 1, 2"))"""),
    ("markdown", "## Training sets: every materialization is a Delta version (time travel reads an old one)"),
    ("code", """if "training_sets" in tables:
    display(sql("SELECT set_name, iteration, source, count(*) AS n, avg(length(output)) AS mean_output_chars FROM training_sets GROUP BY 1, 2, 3 ORDER BY 1, 3"))
    history = spark.sql("DESCRIBE HISTORY training_sets").select("version", "timestamp", "operation", "userMetadata")
    display(history.orderBy("version").toPandas())
    display(sql("SELECT count(*) AS rows_in_version_0 FROM training_sets VERSION AS OF 0"))"""),
    ("markdown", "## Evaluations: win rate per model, with its standard error"),
    ("code", """if "evaluations" in tables:
    evaluations = sql("SELECT model, baseline, win_rate, stderr, n_prompts FROM evaluations ORDER BY evaluated_at")
    display(evaluations)
    plt.errorbar(range(len(evaluations)), evaluations["win_rate"], yerr=evaluations["stderr"], fmt="o", capsize=4)
    plt.xticks(range(len(evaluations)), evaluations["model"], rotation=20)
    plt.axhline(0.5, color="grey", linestyle=":"); plt.ylim(0, 1); plt.title("Win rate against the baseline"); plt.show()"""),
]


def build() -> nbformat.NotebookNode:
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for kind, source in CELLS:
        make = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
        notebook.cells.append(make(source))
    return notebook


if __name__ == "__main__":
    target = Path(__file__).resolve().parent.parent / "notebooks" / "explore.ipynb"
    nbformat.write(build(), target)
    print(f"wrote {target}")
