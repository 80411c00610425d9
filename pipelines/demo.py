"""`humpback demo`: the whole loop on the embedded default (sample corpus, embedded seed, SmolLM2)."""
from __future__ import annotations

import argparse
import sys

from pipelines import tables
from pipelines.common import Context, run_stage, stage_parser


def build_parser() -> argparse.ArgumentParser:
    parser = stage_parser("demo", "The whole loop on the embedded sample corpus, seed and model.")
    parser.add_argument("--iterations", type=int, default=1, help="curation iterations (M1, M2, ...); default 1")
    return parser


def run(ctx: Context, args: argparse.Namespace) -> int:
    print(f"humpback demo: lakehouse {ctx.lakehouse.root}, MLflow {ctx.mlflow_uri}")
    return tables.run(ctx, args)


def main(argv: list[str] | None = None) -> int:
    return run_stage(build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
