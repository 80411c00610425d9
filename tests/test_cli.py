"""The `humpback` command: stages listed, global options passed on to the stage."""
from humpback import cli

DESIGN_STAGES = ["ingest", "segment", "seed", "train", "augment", "curate", "trainset", "evaluate", "iterate",
                 "demo", "sql"]


def test_help_lists_every_stage_of_the_design(capsys):
    try:
        cli.main(["--help"])
    except SystemExit as exit_:
        assert exit_.code == 0
    out = capsys.readouterr().out
    for stage in DESIGN_STAGES:
        assert f"\n  {stage} " in out


def test_every_stage_has_its_own_help(capsys):
    for stage in DESIGN_STAGES:
        try:
            cli.main([stage, "--help"])
        except SystemExit as exit_:
            assert exit_.code == 0
        assert f"usage: humpback {stage}" in capsys.readouterr().out


def test_global_options_before_the_stage_reach_the_stage():
    args = cli.build_parser().parse_args(["--lakehouse", "/tmp/lh", "--set", "a.b=1", "sql", "SELECT 1"])
    assert cli.global_argv(args) == ["--lakehouse", "/tmp/lh", "--set", "a.b=1"]
    assert args.stage_args == ["SELECT 1"]


def test_unknown_stage_is_refused(capsys):
    try:
        cli.main(["bogus"])
    except SystemExit as exit_:
        assert exit_.code == 2
    assert "invalid choice" in capsys.readouterr().err
