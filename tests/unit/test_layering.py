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


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(files) -> dict[str, set[str]]:
    """Which of the given modules each imports, at the top or inside a function. `from . import storage` imports the
    module storage, not its package: the package counts only where a name of its own is imported from it."""
    modules = {module_name(p): p for p in files}
    graph = {}
    for name, path in modules.items():
        names = imported(path)
        graph[name] = set()
        for target in names & modules.keys() - {name}:
            children = {n for n in names if n.startswith(f"{target}.") and "." not in n[len(target) + 1:]}
            if not children or not children <= modules.keys():
                graph[name].add(target)
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The groups of modules that import one another, directly or round a circle (strongly connected components)."""
    order, low, stack, found = {}, {}, [], []

    def visit(node):
        order[node] = low[node] = len(order)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in order:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], order[nxt])
        if low[node] == order[node]:
            group = []
            while not group or group[-1] != node:
                group.append(stack.pop())
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in order:
            visit(node)
    return sorted(found)


def test_no_import_circle_in_docshift():
    """Every dependency among docshift's modules points one way: a circle makes a module's import order matter and
    hides which of two modules owns what they share (counted with the imports inside functions and TYPE_CHECKING)."""
    files = list((ROOT / "docshift").glob("*.py")) + list((ROOT / "docshift" / "engine").glob("*.py"))
    graph = import_graph(files)
    assert len(graph) > 40 and "docshift.engine.runs" in graph["docshift.engine.batches"]
    assert circles(graph) == []


def test_the_circle_finder_finds_one():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []
