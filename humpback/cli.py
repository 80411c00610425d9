"""`humpback <stage>`: one command per pipeline stage; each runs the stage's Spark job in `pipelines/`."""
from __future__ import annotations

import argparse
import importlib
import sys

from pipelines.common import add_global_options, global_argv

# stage -> what it does; each is the module pipelines.<stage> with a main(argv).
STAGES = {
    "ingest": "read WARC files into `pages` (bad records into `rejects`)",
    "segment": "cut pages into header segments with quality signals into `segments`",
    "seed": "load a seed set (oasst1, jsonl, parquet, messages) into `seed`",
    "train": "fine-tune a backward or forward model and register it in MLflow",
    "augment": "write an instruction for every kept segment into `candidates`",
    "curate": "rate candidate pairs with a forward model into `ratings`",
    "trainset": "materialize a new version of `training_sets` with the SQL filters",
    "evaluate": "pairwise win rate of a model against a baseline into `evaluations`",
    "iterate": "the loop after augmentation: rate, select, train, re-rate",
    "demo": "the whole loop on the embedded sample corpus, seed and model",
    "sql": "run Spark SQL against the lakehouse (tables by bare name)",
    "tables": "list the lakehouse tables with their row counts and versions",
}


def build_parser() -> argparse.ArgumentParser:
    stage_list = "\n".join(f"  {name:<9} {text}" for name, text in STAGES.items())
    parser = argparse.ArgumentParser(
        prog="humpback",
        description="Instruction backtranslation (Humpback) on Spark, Delta Lake and MLflow.",
        epilog=f"stages:\n{stage_list}\n\n`humpback STAGE --help` shows a stage's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_global_options(parser)
    parser.add_argument("stage", choices=list(STAGES), metavar="STAGE", help="one of: " + ", ".join(STAGES))
    parser.add_argument("stage_args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        module = importlib.import_module(f"pipelines.{args.stage}")
        return int(module.main(list(args.stage_args) + global_argv(args)) or 0)
    except KeyboardInterrupt:  # Ctrl-C before the stage's own handler was in place (imports, argument parsing)
        print(f"humpback {args.stage}: interrupted", file=sys.stderr, flush=True)
        return 130


if __name__ == "__main__":
    sys.exit(main())
