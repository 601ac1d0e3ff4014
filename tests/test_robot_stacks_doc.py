"""docs/robot_stacks.md runs as written: its bash and python blocks, in order, in one empty folder
(a block after a ``<!-- not run`` line is skipped)."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "robot_stacks.md"
BLOCK = re.compile(r"(<!-- not run[^\n]*-->\n)?```(bash|python)\n(.*?)```", re.S)


def doc_blocks():
    return [(lang, code) for skip, lang, code in BLOCK.findall(DOC.read_text()) if not skip]


def test_doc_has_a_block_for_each_stack():
    text = DOC.read_text()
    for heading in ("## robomimic", "## LeRobot", "## Plain PyTorch", "## ONNX Runtime"):
        assert heading in text
    langs = [lang for lang, _ in doc_blocks()]
    assert langs.count("python") >= 3 and langs.count("bash") >= 3


def test_doc_blocks_run_as_written(tmp_path):
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    outputs = []
    for i, (lang, code) in enumerate(doc_blocks()):
        cmd = ["bash", "-euo", "pipefail", "-c", code] if lang == "bash" else [sys.executable, "-c", code]
        proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"block {i} ({lang}) failed:\n{code}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
        outputs.append(proc.stdout)
    text = "\n".join(outputs)
    assert (tmp_path / "demos" / "microwave_left.hdf5").exists()
    assert list(tmp_path.glob("runs/*/*/models/*.pth"))  # robomimic trained and saved
    assert (tmp_path / "lerobot_microwave" / "meta" / "info.json").exists()
    assert "torch.Size([2, 32]) torch.Size([2, 32]) random:seed=0" in text
    assert "onnxruntime latency batch=1" in text and "(1, 32)" in text
    assert (tmp_path / "enc.onnx.card.json").exists()
