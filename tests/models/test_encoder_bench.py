"""bench/encoder_throughput.py runs and reports consistent numbers (tiny variant, CPU)."""
import importlib.util
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "encoder_throughput.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("encoder_throughput", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("extra", [[], ["--backward", "--text"], ["--backward", "--dual"]])
def test_bench_reports_json(bench, capsys, extra):
    res = bench.main(["--variant", "egovideo_tiny", "--batch", "2", "--device", "cpu", "--dtype", "fp32",
                      "--iters", "2", "--warmup", "1", *extra])
    printed = json.loads(capsys.readouterr().out)
    assert printed["runs"]["eager"]["clips_per_s"] == res["runs"]["eager"]["clips_per_s"] > 0
    eager = res["runs"]["eager"]
    assert eager["clips_per_s"] == pytest.approx(2 / (eager["ms_per_iter_median"] / 1e3), rel=0.02)
    assert res["gflops_per_iter"] > 0 and res["machine"]["cpu_count"] >= 1
    assert res["mode"] == ("forward+backward" if extra else "forward")
    if "--dual" in extra:  # the 16-frame slow clip makes the step costlier than the 4-frame one
        assert res["frames"] == 4 and res["dual"]
