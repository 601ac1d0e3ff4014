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
    il = res["encoder_in_loop"]
    assert abs(il["total_s"] - il["per_step_s"] * 20) < 1e-2
    assert res["speedup"] == round(il["total_s"] / res["cached"]["total_s"], 1)
    assert res["cached"]["total_s"] >= res["cached"]["encode_s"] > 0
