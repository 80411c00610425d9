"""`humpback <stage>`: one command per stage; each is the `STAGE` declared in humpback/stages/<stage>.py."""
from __future__ import annotations

import argparse
import sys

from humpback.stage import add_global_options, global_argv
from humpback.stages import COMMANDS, stage


def build_parser() -> argparse.ArgumentParser:
    width = max(len(name) for name in COMMANDS)
    stage_list = "\n".join(f"  {name:<{width}} {stage(name).description}" for name in COMMANDS)
    parser = argparse.ArgumentParser(
        prog="humpback",
        description="Instruction backtranslation (Humpback) on Spark, Delta Lake and MLflow.",
        epilog=f"stages:\n{stage_list}\n\n`humpback STAGE --help` shows a stage's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_global_options(parser)
    parser.add_argument("stage", choices=COMMANDS, metavar="STAGE", help="one of: " + ", ".join(COMMANDS))
    parser.add_argument("stage_args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return stage(args.stage).main(list(args.stage_args) + global_argv(args))
    except KeyboardInterrupt:  # Ctrl-C before the stage's own handler was in place (imports, argument parsing)
        print(f"humpback {args.stage}: interrupted", file=sys.stderr, flush=True)
        return 130


if __name__ == "__main__":
    sys.exit(main())
