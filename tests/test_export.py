"""``egohod export``: the three formats with the tiny encoder, parity output and exit codes."""
import json

import pytest
import torch

from egohod.export import main, parse_args


def _run(capsys, *args):
    rc = main(list(args))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_safetensors_weights_and_spec_metadata(tmp_path, capsys):
    from safetensors import safe_open

    out = tmp_path / "enc.safetensors"
    rc, stdout, _ = _run(capsys, "encoder=egovideo_tiny", "format=safetensors", f"out={out}", "batch=2")
    assert rc == 0
    assert "parity safetensors batch=2: max abs diff" in stdout and "batch=3" in stdout
    with safe_open(str(out), "pt") as f:
        meta = f.metadata()
        keys = set(f.keys())
    assert meta["egohod_format"] == "frozen_encoder" and meta["encoder"] == "egovideo_tiny"
    spec = json.loads(meta["input_spec"])
    assert spec["image_size"] == 32 and spec["num_frames"] == 4 and spec["embed_dim"] == 32
    assert "visual.conv1.weight" in keys and not any(k.startswith("textual.") for k in keys)


def test_torchscript_roundtrip(tmp_path, capsys):
    out = tmp_path / "enc.pt"
    rc, stdout, _ = _run(capsys, "encoder=egovideo_tiny", "format=torchscript", f"out={out}", "height=40", "width=56")
    assert rc == 0
    result = json.loads(stdout[stdout.index("{"):])
    assert result["ok"] and result["max_abs_diff"] <= 1e-3 and result["input"] == "uint8 [B, 4, 40, 56, 3]"
    m = torch.jit.load(str(out))
    assert m(torch.zeros(5, 4, 40, 56, 3, dtype=torch.uint8)).shape == (5, 32)


def test_onnx_dynamic_batch_in_onnxruntime(tmp_path, capsys):
    import numpy as np
    import onnxruntime as ort

    out = tmp_path / "enc.onnx"
    rc, stdout, _ = _run(capsys, "encoder=egovideo_tiny", "format=onnx", f"out={out}", "batch=2")
    assert rc == 0 and "parity onnx batch=3: max abs diff" in stdout
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["frames"]
    (z,) = sess.run(["embedding"], {"frames": np.zeros((7, 4, 32, 32, 3), dtype=np.uint8)})
    assert z.shape == (7, 32)


def test_parity_failure_exits_non_zero(tmp_path, capsys):
    rc, _, err = _run(capsys, "encoder=egovideo_tiny", "format=safetensors", f"out={tmp_path / 'e.safetensors'}", "tol=-1")
    assert rc == 1 and "parity check FAILED" in err


def test_bad_arguments(capsys):
    rc, _, err = _run(capsys, "encoder=egovideo_tiny", "out=x.onnx", "fromat=onnx")
    assert rc == 2 and "fromat" in err
    rc, _, err = _run(capsys, "encoder=egovideo_tiny", "out=x.bin", "format=tflite")
    assert rc == 2 and "format must be one of" in err
    with pytest.raises(ValueError, match="out=..."):
        parse_args(["encoder=egovideo_tiny"])
