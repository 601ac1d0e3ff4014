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
    from egohod.export import read_export_metadata

    meta = read_export_metadata(out)  # the seed travels with the graph, as in the other formats
    assert meta["weights"] == "random:seed=0" and meta["seed"] == "0" and meta["num_frames"] == "4"


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


@pytest.mark.parametrize("fmt,suffix", [("safetensors", ".safetensors"), ("torchscript", ".pt")])
def test_random_encoder_export_records_its_seed_and_matches_load_encoder(tmp_path, capsys, fmt, suffix):
    """An exported random encoder is load_encoder(name, seed=<recorded seed>): two exports with the
    same seed are identical, another seed differs, and the global RNG does not matter."""
    import egohod
    from egohod.export import read_export_metadata

    outs = {}
    for name, seed, noise in (("a", 1, 0), ("b", 1, 123), ("c", 2, 0)):
        torch.manual_seed(noise)  # global RNG state must not leak into the weights
        out = tmp_path / f"{name}{suffix}"
        rc, stdout, _ = _run(capsys, "encoder=egovideo_tiny", f"format={fmt}", f"out={out}", f"seed={seed}")
        assert rc == 0 and "RANDOM WEIGHTS (seed" in stdout
        assert json.loads(stdout[stdout.index("{"):])["weights"] == f"random:seed={seed}"
        outs[name] = out
    meta = read_export_metadata(outs["a"])
    assert meta["weights"] == "random:seed=1" and meta["seed"] == "1" and meta["encoder"] == "egovideo_tiny"
    ref = egohod.load_encoder(meta["encoder"], seed=int(meta["seed"]))
    x = torch.randint(0, 256, (2, 4, 32, 32, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    if fmt == "safetensors":
        run = {k: egohod.load_encoder("egovideo_tiny", checkpoint=v) for k, v in outs.items()}
    else:
        run = {k: torch.jit.load(str(v)) for k, v in outs.items()}
    with torch.no_grad():
        z = {k: m(x) for k, m in run.items()}
        want = ref(x)
    assert torch.allclose(z["a"], want, atol=1e-5) and torch.equal(z["a"], z["b"])
    assert (z["c"] - want).abs().max() > 1e-2
