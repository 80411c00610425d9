"""humpback: instruction backtranslation (Li et al. 2023) on Spark, Delta Lake and MLflow."""

from humpback.inference.rating import parse_rating

__version__ = "0.1.0"
__all__ = ["__version__", "parse_rating"]
