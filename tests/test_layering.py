"""The shape of the code: library, stages and jobs import each other in one direction only."""
from __future__ import annotations

import ast
from pathlib import Path

from humpback.stage import Stage
from humpback.stages import NAMES, command, stage
from humpback.tables import TABLES

REPO = Path(__file__).resolve().parent.parent
FLOWS = {"iterate", "demo"}  # stages that run other stages, as objects


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside functions; `from a import b` counts as a and a.b."""
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return modules


def stage_imports(path: Path) -> set[str]:
    return {m for m in imported_modules(path) if m.startswith("humpback.stages.")}


def test_the_library_never_imports_the_job_files():
    offenders = {str(path.relative_to(REPO)): sorted(m for m in imported_modules(path) if m.split(".")[0] == "pipelines")
                 for path in (REPO / "humpback").rglob("*.py")}
    assert {path: mods for path, mods in offenders.items() if mods} == {}


def test_no_stage_imports_another_and_flows_import_only_stages():
    offenders = {}
    for path in (REPO / "humpback" / "stages").glob("*.py"):
        if path.stem in FLOWS or path.stem == "__init__":
            continue
        if stage_imports(path):
            offenders[path.name] = sorted(stage_imports(path))
    assert offenders == {}
    flow_imports = {name: stage_imports(REPO / "humpback" / "stages" / f"{name}.py") for name in FLOWS}
    assert flow_imports["iterate"] == {f"humpback.stages.{n}" for n in ("curate", "trainset", "train", "evaluate", "scorer_check")}
    assert "humpback.stages.iterate" in flow_imports["demo"]


def test_outside_humpback_stages_only_the_cli_and_the_stage_registry_reach_stages():
    offenders = {str(path.relative_to(REPO)): sorted(stage_imports(path))
                 for path in (REPO / "humpback").rglob("*.py")
                 if "stages" not in path.parts and path.name != "cli.py" and stage_imports(path)}
    assert offenders == {}


def test_every_job_file_is_its_stage_entry_point_and_nothing_else():
    jobs = sorted(path.stem for path in (REPO / "pipelines").glob("*.py") if path.stem != "__init__")
    assert jobs == sorted(NAMES)
    for name in jobs:
        path = REPO / "pipelines" / f"{name}.py"
        assert {m for m in imported_modules(path) if m.startswith("humpback")} == {
            f"humpback.stages.{name}", f"humpback.stages.{name}.STAGE"}, path
        assert len(path.read_text().splitlines()) <= 12, path
    assert sum(len(path.read_text().splitlines()) for path in (REPO / "pipelines").glob("*.py")) < 1000


def test_every_stage_is_declared_with_tables_the_registry_knows():
    import argparse

    for name in NAMES:
        declared = stage(name)
        assert isinstance(declared, Stage) and declared.name == command(name) and declared.description
        defaults = argparse.Namespace(**{a.dest: a.default for a in declared.parser()._actions})
        reads = declared.reads(defaults) if callable(declared.reads) else declared.reads
        assert set(reads) | set(declared.writes) <= set(TABLES), name
        assert not set(reads) & set(declared.writes), name
