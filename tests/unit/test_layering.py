"""The layering of shared/DESIGN.md, read from the imports: core ← tasks ← flows ← CLI/deployments.

The core (docshift/*.py but the command line, and docshift/engine/) imports neither Prefect nor the orchestration
folders; tasks import no flows; the engine's pure part (steps) imports no I/O of its own.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLI = {"cli.py", "command.py", "fleet_commands.py"}
ORCHESTRATION = ("docshift.flows", "docshift.tasks", "docshift.deployments", "prefect")


def imported(path: Path) -> set[str]:
    """Absolute names of the modules a file imports (relative imports resolved against its package)."""
    package = "docshift" if path.parent.name == "docshift" else f"docshift.{path.parent.name}"
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(p for p in (base, node.module or "") if p)
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def offending(files, forbidden) -> dict[str, list[str]]:
    found = {}
    for path in files:
        bad = sorted(n for n in imported(path) if n.startswith(forbidden))
        if bad:
            found[str(path.relative_to(ROOT))] = bad
    return found


def test_the_core_imports_no_orchestration():
    core = [p for p in (ROOT / "docshift").glob("*.py") if p.name not in CLI] + list((ROOT / "docshift" / "engine").glob("*.py"))
    assert len(core) > 15
    assert offending(core, ORCHESTRATION) == {}


def test_tasks_import_no_flows_nor_deployments():
    assert offending((ROOT / "tasks").glob("*.py"), ("docshift.flows", "docshift.deployments")) == {}


def test_flows_import_no_deployments_nor_the_command_line():
    assert offending((ROOT / "flows").glob("*.py"), ("docshift.deployments", "docshift.cli", "docshift.command")) == {}


def test_the_per_document_part_is_pure():
    """docshift.compat and docshift.testing import the engine's steps module alone: no pymongo writes, no backups."""
    steps = imported(ROOT / "docshift" / "engine" / "steps.py")
    assert not [n for n in steps if n.startswith(("pymongo", "docshift.engine.", "docshift.ledger", "docshift.db"))
                and n != "docshift.engine.steps"]
    for user in ("compat.py", "testing.py", "phases.py"):
        engine = {n for n in imported(ROOT / "docshift" / user) if n.startswith("docshift.engine")}
        assert engine <= {"docshift.engine.steps", "docshift.engine.steps.make_step", "docshift.engine.steps.transform_one"}, user


def test_no_module_imports_a_top_level_flows_or_tasks_package():
    """Installed, there is one import package: nothing may import `flows`, `tasks` or `deployments` at top level."""
    files = [p for d in ("docshift", "docshift/engine", "flows", "tasks", "deployments", "tests", "tests/unit",
                         "tests/integration", "benchmarks") for p in (ROOT / d).glob("*.py")]
    assert offending(files, ("flows", "tasks", "deployments")) == {}


def test_no_test_module_imports_another():
    """Shared test helpers live in tests/support (and the model walk in tests/model), not in test modules or conftest."""
    tests = list((ROOT / "tests").rglob("*.py"))
    assert len(tests) > 40
    found = {str(p.relative_to(ROOT)): bad for p in tests
             if (bad := sorted(n for n in imported(p) if n.startswith("tests.") and ".test_" in n or n.endswith(".conftest")))}
    assert found == {}
