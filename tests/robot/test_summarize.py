"""results.json bookkeeping and the sweep summary table (robot/summarize.py)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from robot.results import RESULTS_FORMAT, RunResults, summary_table

ROOT = Path(__file__).resolve().parents[2]


def _episodes(rate, n=10):
    k = round(rate * n)
    return [{"seed": 100 + i, "success": i < k, "steps": 50, "success_step": 30 if i < k else None,
             "solved_steps": 8 if i < k else 0} for i in range(n)]


def _run(encoder, weights, seed, rates, task="microwave"):
    r = RunResults({"encoder": {"name": encoder, "weights": weights, "random_weights": weights == "random"},
                    "label": encoder, "env": {"task": task, "camera": "left"}, "demos": {"num": 25},
                    "policy": {"name": "mlp"}, "seed": seed})
    for i, rate in enumerate(rates):
        r.add_eval(1000 * (i + 1), {"success_rate": rate, "episodes": _episodes(rate)})
    r.data["complete"] = True
    return r


def test_best_and_final():
    r = _run("state", "none", 0, [0.2, 0.9, 0.9, 0.6])
    assert r.data["best"] == {"step": 2000, "success_rate": 0.9}  # the earliest of equal bests
    assert r.data["final"] == {"step": 4000, "success_rate": 0.6}
    r.add_eval(2000, {"success_rate": 0.1, "episodes": _episodes(0.1)})  # re-evaluated step replaces
    assert [e["step"] for e in r.evals] == [1000, 2000, 3000, 4000]
    assert r.data["best"]["step"] == 3000


def _write_sweep(root: Path):
    runs = [_run("state", "none", 0, [0.5, 0.8]), _run("state", "none", 1, [0.6, 1.0]),
            _run("state", "none", 2, [0.7, 0.9]), _run("egovideo_tiny", "random", 0, [0.0, 0.1]),
            _run("egovideo_tiny", "random", 1, [0.3, 0.1])]
    for i, r in enumerate(runs):
        d = root / f"job{i}"
        d.mkdir(parents=True)
        r.save(d / "results.json")
    return runs


def test_summary_table_mean_std_over_seeds(tmp_path):
    runs = _write_sweep(tmp_path)
    table = summary_table([r.data for r in runs])
    lines = table.splitlines()
    assert len(lines) == 4
    ego = next(line for line in lines if line.startswith("| egovideo_tiny"))
    state = next(line for line in lines if line.startswith("| state"))
    # best: 0.1 and 0.3 -> 20.0 ± 14.1; final: 0.1, 0.1 -> 10.0 ± 0.0
    assert "| RANDOM WEIGHTS |" in ego and "| 2 | 10 | 20.0 ± 14.1 | 10.0 ± 0.0 |" in ego
    # best 0.8, 1.0, 0.9 -> 90.0 ± 10.0 ; final identical
    assert "| 3 | 10 | 90.0 ± 10.0 | 90.0 ± 10.0 |" in state


def test_summarize_cli(tmp_path):
    _write_sweep(tmp_path / "sweep")
    out = tmp_path / "table.md"
    p = subprocess.run([sys.executable, str(ROOT / "robot" / "summarize.py"), str(tmp_path / "sweep"), "--out", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "90.0 ± 10.0" in p.stdout and out.read_text().strip() == p.stdout.strip()
    p = subprocess.run([sys.executable, str(ROOT / "robot" / "summarize.py"), str(tmp_path / "nothing")],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "is not a directory" in p.stderr


def test_foreign_json_is_rejected(tmp_path):
    from robot.results import load_results

    (tmp_path / "results.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(ValueError, match=f"not a BC results file.*{RESULTS_FORMAT}"):
        load_results([tmp_path / "results.json"])


def test_find_results_follows_symlinks_and_skips_reevaluations(tmp_path):
    from robot.results import find_results

    runs = _write_sweep(tmp_path / "sweep")
    (tmp_path / "sweep" / "job0" / "eval" / "0002000").mkdir(parents=True)
    runs[0].save(tmp_path / "sweep" / "job0" / "eval" / "0002000" / "results.json")  # eval_bc output
    (tmp_path / "picked").mkdir()
    (tmp_path / "picked" / "a").symlink_to(tmp_path / "sweep" / "job1", target_is_directory=True)
    assert len(find_results(tmp_path / "sweep")) == 5
    assert find_results(tmp_path / "picked") == [tmp_path / "picked" / "a" / "results.json"]


def test_summary_json_and_plot(tmp_path):
    runs = _write_sweep(tmp_path / "sweep")
    r = _run("egovideo_small", "ab12" * 16, 0, [0.4, 0.3])
    (tmp_path / "sweep" / "job9").mkdir()
    r.save(tmp_path / "sweep" / "job9" / "results.json")
    js, png = tmp_path / "summary.json", tmp_path / "summary.png"
    p = subprocess.run([sys.executable, str(ROOT / "robot" / "summarize.py"), str(tmp_path / "sweep"),
                        "--json", str(js), "--plot", str(png)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    rows = {row["encoder"]: row for row in json.loads(js.read_text())}
    assert {k: rows["state"][k] for k in ("weights", "best", "final", "seeds")} == \
        {"weights": "none", "best": pytest.approx(90.0), "final": pytest.approx(90.0), "seeds": [0, 1, 2]}
    assert rows["egovideo_tiny"]["weights"] == "random" and rows["egovideo_tiny"]["best"] == pytest.approx(20.0)
    assert rows["egovideo_small"]["weights"] == "pretrained" and rows["egovideo_small"]["best_std"] is None
    assert "| 1 | 10 | 40.0 | 30.0 |" in p.stdout  # one seed: no "± 0.0"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(runs) == 5


def _heldout_episodes(rate, n=10):
    return [dict(e, seed=5_000_000 + i) for i, e in enumerate(_episodes(rate, n))]


def _with_heldout(run, rate):
    run.set_heldout(run.data["best"]["step"], {"success_rate": rate, "episodes": _heldout_episodes(rate)},
                    [5_000_000, 5_000_009], f"checkpoints/{run.data['best']['step']:07d}/policy.pt")
    return run


def test_summary_best_final_heldout_one_and_three_seeds():
    one = [_with_heldout(_run("state", "none", 0, [0.4, 0.7, 0.5]), 0.6)]
    line = summary_table([r.data for r in one]).splitlines()[-1]
    assert line.endswith("| 1 | 10 | 70.0 | 50.0 | 60.0 |") and "±" not in line  # one seed: no spread
    three = [_with_heldout(_run("state", "none", s, rates), held) for s, rates, held in
             ((0, [0.4, 0.7], 0.6), (1, [0.8, 0.6], 0.5), (2, [0.9, 0.3], 0.7))]
    line = summary_table([r.data for r in three]).splitlines()[-1]
    # best 70, 80, 90 -> 80.0 ± 10.0; final 70, 60, 30 -> 53.3 ± 20.8; heldout 60, 50, 70 -> 60.0 ± 10.0
    assert line.endswith("| 3 | 10 | 80.0 ± 10.0 | 53.3 ± 20.8 | 60.0 ± 10.0 |"), line
    old = _run("state", "none", 3, [0.5])  # a run from before best_heldout: counted, said so
    line = summary_table([r.data for r in three] + [old.data]).splitlines()[-1]
    assert line.endswith("| 60.0 ± 10.0 (1 seed(s) without) |"), line


def test_heldout_must_be_the_best_checkpoint_on_unused_seeds():
    r = _run("state", "none", 0, [0.2, 0.9, 0.6])
    with pytest.raises(ValueError, match="best checkpoint .step 2000.*got step 3000"):
        r.set_heldout(3000, {"success_rate": 0.5, "episodes": _heldout_episodes(0.5)}, [5_000_000, 5_000_009], "x")
    reused = _episodes(0.5)  # seeds 100.. are the evaluation seeds
    with pytest.raises(ValueError, match="were used by the evaluations"):
        r.set_heldout(2000, {"success_rate": 0.5, "episodes": reused}, [100, 109], "x")
    r.set_heldout(2000, {"success_rate": 0.5, "episodes": _heldout_episodes(0.5)}, [5_000_000, 5_000_009], "x")
    assert r.data["best_heldout"]["step"] == 2000 and r.data["best_heldout"]["success_rate"] == 0.5


def test_runs_of_different_protocols_are_never_merged():
    from robot.results import protocol_label

    def run(protocol, env_id, strict, rate):
        r = _run("state", "none", 0, [rate])
        r.data.update(protocol=protocol)
        r.data["env"].update(id=env_id, strict_success=strict)
        return r.data

    ours, r3m = run("egohod", "kitchen/microwave", False, 0.5), run("r3m", "kitchen_r3m/microwave", True, 0.7)
    mixed = run("egohod", "kitchen/microwave", True, 0.9)  # protocol=egohod env.success=strict
    assert [protocol_label(r) for r in (ours, r3m, mixed)] == ["egohod", "r3m", "egohod (strict)"]
    old = _run("state", "none", 1, [0.3]).data  # written before presets: egohod's
    assert protocol_label(old) == "egohod"
    lines = summary_table([ours, r3m, mixed]).splitlines()[2:]
    assert len(lines) == 3 and sorted(line.split(" | ")[6] for line in lines) == ["egohod", "egohod (strict)", "r3m"]
