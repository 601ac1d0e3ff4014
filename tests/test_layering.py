"""The library's layering, read from the source (every import, also the ones inside functions):
no import cycle between egohod's subpackages and top-level modules, ``egohod.data`` and
``egohod.models`` independent of each other (both build on ``egohod.preprocess``), and nothing in
``egohod`` importing the training side (robot, pretrain, envs, policies)."""
import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "egohod"
TRAINING_SIDE = {"robot", "pretrain", "envs", "policies"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    p = PKG.parent.joinpath(*name.split("."))
    return p.with_suffix(".py").is_file() or (p / "__init__.py").is_file()


def _imports(path: Path) -> set[str]:
    """Absolute names of the modules ``path`` imports."""
    me = _module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module
            out.add(mod)
            out |= {f"{mod}.{a.name}" for a in node.names if _is_module(f"{mod}.{a.name}")}
    return out


def _unit(name: str) -> str | None:
    """The layer a module belongs to: ``egohod.<subpackage>``, ``egohod.<module>`` or ``egohod``."""
    parts = name.split(".")
    if parts[0] != "egohod":
        return None
    return ".".join(parts[:2])


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in PKG.rglob("*.py"):
        src = _unit(_module_name(path))
        graph.setdefault(src, set())
        for target in _imports(path):
            dst = _unit(target)
            if dst is not None and dst != src:
                graph[src].add(dst)
    return graph


def _reachable(graph, start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_no_import_cycle_between_egohod_subpackages():
    graph = _graph()
    cycles = sorted(f"{a} -> {b} -> ... -> {a}" for a in graph for b in graph[a] if a in _reachable(graph, b))
    assert cycles == []


def test_data_and_models_do_not_import_each_other():
    graph = _graph()
    # "egohod" is the package's __init__, which serves the model names
    assert not {"egohod.models", "egohod"} & _reachable(graph, "egohod.data")
    assert "egohod.data" not in _reachable(graph, "egohod.models")
    assert "egohod.preprocess" in graph["egohod.data"] & graph["egohod.models"]


def test_the_library_does_not_import_the_training_side():
    offenders = sorted(f"{_module_name(p)} imports {t}" for p in PKG.rglob("*.py") for t in _imports(p)
                       if t.split(".")[0] in TRAINING_SIDE)
    assert offenders == []


def _library_files():
    return [p for p in PKG.rglob("*.py") if "configs" not in p.relative_to(PKG).parts]


def test_library_code_raises_config_errors_and_never_exits():
    """Only the entry-point helper egohod.config.exit_on_config_error turns an error into an exit."""
    exits = []
    for path in _library_files():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Name) and node.id == "SystemExit":
                exits.append(f"{path.relative_to(PKG.parent)}:{node.lineno}")
    assert [e.split(":")[0] for e in exits] == ["egohod/config.py"], exits


def test_yaml_is_found_through_the_package_not_the_source_tree():
    """No module locates configs/ relative to its own file (a wheel install has no source tree)."""
    root = PKG.parent
    offenders = []
    for top in ("egohod", "robot", "pretrain", "envs", "policies", "bench"):
        for path in (root / top).rglob("*.py"):
            text = path.read_text()
            if "parents[" in text and '"configs"' in text:
                offenders.append(str(path.relative_to(root)))
    assert offenders == []
