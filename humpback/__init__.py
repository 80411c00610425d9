"""humpback: instruction backtranslation (Li et al. 2023) on Spark, Delta Lake and MLflow."""

__version__ = "0.1.0"
