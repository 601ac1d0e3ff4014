"""bench/bc_pipeline.py runs both pipelines and reports measured vs extrapolated times."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bc_pipeline_bench_json(tmp_path):
    out = tmp_path / "bench.json"
    p = subprocess.run([sys.executable, str(ROOT / "bench" / "bc_pipeline.py"), "--encoder", "egovideo_tiny",
                        "--image-size", "32", "--demos", "2", "--demo-len", "6", "--steps", "20",
                        "--inloop-steps", "5", "--batch", "4", "--device", "cpu", "--out", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    res = json.loads(out.read_text())
    assert res["encoder"] == "egovideo_tiny" and res["weights"].startswith("random")
    assert res["cached"]["measured"] and res["encoder_in_loop"]["extrapolated"]
    il, cached = res["encoder_in_loop"], res["cached"]
    # The bench rounds each time (to 1e-3 s, per_step_s to 1e-5 s) and the speedup (to 0.1) from
    # the unrounded times, so the relations below hold up to those roundings, whatever the timings.
    assert il["measured_steps"] == 5 and res["steps"] == 20
    assert abs(il["total_s"] - il["per_step_s"] * 20) <= 5e-4 + 20 * 5e-6 + 1e-9
    assert abs(il["per_step_s"] - il["measured_s"] / 5) <= 5e-6 + 5e-4 / 5 + 1e-9
    assert abs(cached["total_s"] - (cached["encode_s"] + cached["train_s"])) <= 1.5e-3 + 1e-9
    assert min(cached["encode_s"], cached["train_s"], cached["total_s"], il["total_s"]) >= 0
    # speedup = in-loop total / cached total of the unrounded times, each within 5e-4 s of its
    # rounded value: it lies in [(a - d) / (b + d), (a + d) / (b - d)], then rounded to 0.1
    a, b, d = il["total_s"], cached["total_s"], 5e-4
    low = max(a - d, 0.0) / (b + d)
    high = (a + d) / (b - d) if b > d else float("inf")
    assert low - 0.05 - 1e-9 <= res["speedup"] <= high + 0.05 + 1e-9, (res["speedup"], a, b)
    assert res["speedup"] == round(res["speedup"], 1)
