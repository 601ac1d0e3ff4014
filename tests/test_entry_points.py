"""Console commands and scripts: every ``[project.scripts]`` entry names a callable that imports,
the scripts run by path from any folder without touching ``sys.path`` (the package is installed),
and no code outside tests/conftest.py manipulates ``sys.path``."""
import ast
import importlib
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]


@pytest.mark.parametrize("command", sorted(SCRIPTS))
def test_console_command_targets_import(command):
    module, _, attr = SCRIPTS[command].partition(":")
    assert callable(getattr(importlib.import_module(module), attr)), SCRIPTS[command]


def test_every_documented_command_exists():
    assert {"egohod", "egohod-pretrain", "egohod-train-bc", "egohod-eval-bc", "egohod-make-demos",
            "egohod-make-corpus", "egohod-summarize-bc"} <= set(SCRIPTS)


def _touches_sys_path(path: Path) -> bool:
    tree = ast.parse(path.read_text(), str(path))
    return any(isinstance(n, ast.Attribute) and n.attr == "path" and isinstance(n.value, ast.Name)
               and n.value.id == "sys" for n in ast.walk(tree))


def test_no_sys_path_manipulation_outside_conftest():
    offenders = [str(p.relative_to(REPO)) for d in ("egohod", "robot", "pretrain", "envs", "policies", "bench",
                                                    "scripts")
                 for p in sorted((REPO / d).rglob("*.py")) if _touches_sys_path(p)]
    assert offenders == []


@pytest.mark.parametrize("script", ["robot/train_bc.py", "pretrain/train.py"])
def test_scripts_run_by_path_from_another_folder(script, tmp_path):
    out = subprocess.run([sys.executable, str(REPO / script), "--help"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "powered by Hydra" in out.stdout and "== Config ==" in out.stdout
