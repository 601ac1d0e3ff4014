"""egohod.measure: one machine description with the same keys everywhere, and the JSON record
printed and written atomically."""
import json
import os
import subprocess
import sys

import pytest

from egohod import fileio, measure

KEYS = {"platform", "python", "cpu", "cpu_count", "cpu_count_total", "load_average", "torch", "torch_threads",
        "device", "gpu", "cuda", "gpu_memory_gib"}


def test_machine_has_the_same_typed_keys_on_the_cpu():
    import torch

    info = measure.machine(torch.device("cpu"))
    assert set(info) == KEYS
    assert info["device"] == "cpu"
    assert isinstance(info["cpu"], str) and info["cpu"]
    assert isinstance(info["cpu_count"], int) and 1 <= info["cpu_count"] <= info["cpu_count_total"]
    assert info["python"].count(".") == 2 and isinstance(info["platform"], str)
    assert info["torch"] == torch.__version__ and info["torch_threads"] == torch.get_num_threads()
    load = info["load_average"]
    assert load is None or (isinstance(load, list) and len(load) == 3 and all(x >= 0 for x in load))
    # a CPU device keeps the GPU keys, set to None (records compare field by field)
    assert info["gpu"] is None and info["cuda"] is None and info["gpu_memory_gib"] is None
    json.dumps(info)  # plain JSON values only


def test_cpu_count_is_the_affinity_not_the_machine(monkeypatch):
    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("no CPU affinity on this system")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    info = measure.machine()
    assert info["cpu_count"] == 1 and info["cpu_count_total"] == 64


def test_device_defaults_to_the_cpu_and_strings_are_accepted():
    assert measure.machine()["device"] == "cpu"
    assert measure.machine("meta")["device"] == "meta"
    assert measure.machine("meta")["gpu"] is None


def test_cpu_model_falls_back_to_platform(monkeypatch):
    def no_cpuinfo(*a, **k):
        raise OSError("no /proc")

    monkeypatch.setattr(measure, "open", no_cpuinfo, raising=False)  # shadows the builtin there
    monkeypatch.setattr(measure.platform, "processor", lambda: "")
    monkeypatch.setattr(measure.platform, "machine", lambda: "riscv64")
    assert measure.cpu_model() == "riscv64"


def test_extra_is_merged_and_wins():
    info = measure.machine(extra={"numpy": "9.9", "device": "overridden", "MUJOCO_GL": None})
    assert info["numpy"] == "9.9" and info["device"] == "overridden" and info["MUJOCO_GL"] is None
    assert KEYS <= set(info)


def test_machine_neither_needs_nor_imports_torch():
    code = ("import sys, json; from egohod.measure import machine, emit; info = machine(); "
            "assert 'torch' not in sys.modules, 'torch imported'; emit(info)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    info = json.loads(p.stdout)
    assert info["torch"] is None and info["torch_threads"] is None and info["device"] == "cpu"


def test_a_cuda_device_fills_the_gpu_keys(monkeypatch):
    """The CUDA branch on any machine: torch's answers stubbed (the real ones: the gpu test below)."""
    import torch

    seen = []

    def name(dev):
        seen.append(dev)
        return "Stub GPU"

    monkeypatch.setattr(torch.cuda, "get_device_name", name)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda dev: type("P", (), {"total_memory": 80 * 2**30}))
    monkeypatch.setattr(torch.version, "cuda", "12.9")
    info = measure.machine("cuda:1")
    assert (info["device"], info["gpu"], info["cuda"], info["gpu_memory_gib"]) == ("cuda:1", "Stub GPU", "12.9", 80.0)
    assert seen == [torch.device("cuda:1")]


@pytest.mark.gpu
def test_cuda_device_names_the_gpu():
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    info = measure.machine(torch.device("cuda"))
    assert info["gpu"] == torch.cuda.get_device_name(0) and info["cuda"] == torch.version.cuda
    assert info["gpu_memory_gib"] > 1


def test_emit_prints_and_returns_the_json(capsys):
    record = {"benchmark": "x", "n": 3, "machine": {"cpu_count": 2}}
    text = measure.emit(record)
    out = capsys.readouterr().out
    assert out == text + "\n" and json.loads(out) == record
    assert text == json.dumps(record, indent=2)
    assert measure.emit(record, indent=None) == json.dumps(record)


def test_emit_writes_the_same_text_atomically(tmp_path, capsys, monkeypatch):
    calls = []
    real = fileio.atomic_write_text

    def spy(path, text):
        calls.append(path)
        return real(path, text)

    monkeypatch.setattr(measure, "atomic_write_text", spy)
    target = tmp_path / "sub" / "record.json"
    record = {"benchmark": "x", "values": [1.5, None]}
    text = measure.emit(record, out=target)
    assert calls == [target]
    assert target.read_text() == text + "\n" and json.loads(target.read_text()) == record
    assert json.loads(capsys.readouterr().out) == record
    assert [p.name for p in target.parent.iterdir()] == ["record.json"]  # no temporary file left behind


def test_emit_leaves_the_previous_file_when_the_record_cannot_be_written(tmp_path, capsys):
    target = tmp_path / "record.json"
    target.write_text('{"old": 1}\n')
    with pytest.raises(TypeError):
        measure.emit({"bad": object()}, out=target)
    assert json.loads(target.read_text()) == {"old": 1}
    assert capsys.readouterr().out == ""
