"""The harness imports no study, and no module of either imports itself through others.

Read from the source (ast), not by importing: every import counts, a lazy one inside a
function and one under `TYPE_CHECKING` too, since a lazy import is how a circle hides.
"""

import ast
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HARNESS, STUDIES = "benchmarks", "studies"

Graph = dict[str, set[str]]


def _module(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(node: ast.AST, module: str, is_package: bool) -> list[str]:
    """The dotted names an import statement may load, most specific first."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = node.module or ""
    if node.level:  # relative: from the module's own package, up `level - 1` more
        package = module.split(".") if is_package else module.split(".")[:-1]
        base = ".".join([*package[: len(package) - node.level + 1], *filter(None, [base])])
    # `from package import module` names a module, `from module import name` a name in it.
    return [*(f"{base}.{alias.name}" for alias in node.names), base]


def import_graph(root: Path) -> Graph:
    """Each module of the harness and the studies under `root` → those of them it imports."""
    files = {
        _module(path, root): path
        for package in (HARNESS, STUDIES)
        for path in sorted((root / package).rglob("*.py"))
    }
    graph: Graph = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        graph[name] = set()
        for node in ast.walk(tree):
            for target in _imported(node, name, path.name == "__init__.py"):
                if target in files and target != name:
                    graph[name].add(target)
                    break
    return graph


def harness_imports_of_studies(graph: Graph) -> list[str]:
    """Every import of a study module by a harness module, as "harness → study"."""
    return sorted(
        f"{name} → {target}"
        for name, targets in graph.items()
        if name.split(".")[0] == HARNESS
        for target in targets
        if target.split(".")[0] == STUDIES
    )


def cycles(graph: Graph) -> list[str]:
    """Every import circle found by a depth-first walk, as "a → b → a" from its smallest name."""
    found: set[str] = set()
    done: set[str] = set()

    def walk(name: str, path: list[str]) -> None:
        for target in sorted(graph.get(name, ())):
            if target in path:
                circle = path[path.index(target) :]
                start = circle.index(min(circle))
                circle = circle[start:] + circle[:start]
                found.add(" → ".join([*circle, circle[0]]))
            elif target not in done:
                walk(target, [*path, target])
        done.add(name)

    for name in sorted(graph):
        if name not in done:
            walk(name, [name])
    return sorted(found)


def test_the_harness_imports_no_study() -> None:
    """Studies read the harness's results; no harness module imports a study module."""
    graph = import_graph(ROOT)
    assert any(name.startswith(f"{STUDIES}.") for name in graph)  # the studies were read
    assert harness_imports_of_studies(graph) == []


def test_no_module_of_the_harness_or_the_studies_imports_itself_through_others() -> None:
    """The harness and the studies import without circles (lazy imports included)."""
    graph = import_graph(ROOT)
    assert len(graph) > 20  # every module was read
    assert cycles(graph) == []


def test_a_circle_and_a_harness_import_of_a_study_are_named(tmp_path: Path) -> None:
    """The old circle (goals → generator → goals) and a harness import of a study are named."""
    for package in (HARNESS, STUDIES):
        shutil.copytree(
            ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("results", "__py*")
        )
    goals = tmp_path / HARNESS / "goals.py"
    goals.write_text(
        goals.read_text() + "\n\ndef rate():\n    from benchmarks.openloop_runs import FLOOR_RATE\n"
    )
    run = tmp_path / HARNESS / "run.py"
    run.write_text(run.read_text() + "\nfrom studies.autoscaling import curve\n")
    graph = import_graph(tmp_path)
    assert cycles(graph) == ["benchmarks.goals → benchmarks.openloop_runs → benchmarks.goals"]
    assert harness_imports_of_studies(graph) == ["benchmarks.run → studies.autoscaling.curve"]
