"""One thin job file per stage, for spark-submit (`spark-submit pipelines/segment.py --lakehouse ...`); each stage's
declaration and logic live in humpback/stages/, and `humpback <stage>` runs the same code."""
