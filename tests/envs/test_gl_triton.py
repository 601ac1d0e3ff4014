"""Regression: importing torch._dynamo (Triton) after a Mesa llvmpipe GL context exists used to
segfault the interpreter; `envs.gl.preload_triton` loads Triton before the first context."""
import subprocess
import sys

import pytest

SCRIPT = """
import envs
env = envs.make("kitchen/microwave", camera="left", image_size=32, seed=0)
obs, _ = env.reset(seed=0)
assert obs["rgb"].mean() > 0
import torch._dynamo  # loads Triton's LLVM after llvmpipe's
print("survived")
"""


@pytest.mark.render
def test_dynamo_import_after_rendering_does_not_crash():
    r = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stderr[-2000:]}"
    assert "survived" in r.stdout
