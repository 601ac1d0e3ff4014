"""bench/kitchen_render.py runs end to end and reports what it measured."""
import importlib.util
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "kitchen_render.py"


@pytest.mark.render
def test_bench_reports_rates_for_ours_and_shipped(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("kitchen_render_bench", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "bench.json"
    record = bench.main(["--steps", "3", "--cameras", "left", "--image-size", "64",
                         "--shipped-frames", "1", "--out", str(out)])
    assert json.loads(out.read_text()) == record
    assert json.loads(capsys.readouterr().out) == record
    assert record["machine"]["MUJOCO_GL"] and "gl_renderer" in record["machine"]
    assert record["step"]["n"] == 3 and record["step"]["per_s"] > 0
    left = record["ours"]["left"]
    assert left["step_render"]["cpu_per_s"] > 0 and left["frame_mean"] > 30
    assert left["render_size"] == 73  # 64 / (224 / 256)
    assert record["ours_full_meshes"]["left"]["step_render"]["n"] == 3
    shipped = record["shipped"]
    assert shipped["settings"]["offsamples"] == 8 and shipped["settings"]["offwidth"] == 2560
    assert shipped["frame_mean"] > 30  # its own context rendered a real frame next to ours
