"""Exports shaped for deployment: symbolic preprocessing, single-frame entry point, dynamic H/W,
fp16, the onnxruntime latency line and the JSON card beside each file."""
import json

import numpy as np
import pytest
import torch

import egohod
from egohod.export import main
from egohod.preprocess import center_crop, resize_crop_symbolic, resize_short_side


def _run(capsys, *args):
    rc = main(list(args))
    out = capsys.readouterr()
    return rc, out.out, out.err


def _card(out):
    return json.loads(out.with_name(out.name + ".card.json").read_text())


@pytest.mark.parametrize("h,w,resize,size", [(32, 32, 32, 32), (32, 40, 32, 32), (37, 61, 36, 32),
                                             (61, 37, 36, 32), (50, 51, 40, 37), (224, 300, 256, 224)])
def test_symbolic_resize_crop_is_the_eager_one(h, w, resize, size):
    x = torch.rand(2, 3, h, w, generator=torch.Generator().manual_seed(h * w))
    torch.testing.assert_close(resize_crop_symbolic(x, resize, size), center_crop(resize_short_side(x, resize), size),
                               atol=0, rtol=0)


def test_onnx_single_frame_dynamic_hw_latency_and_card(tmp_path, capsys):
    import onnxruntime as ort

    out = tmp_path / "enc.onnx"
    rc, stdout, err = _run(capsys, "encoder=egovideo_tiny", "format=onnx", f"out={out}", "single_frame=true",
                           "dynamic_hw=true", "height=40", "width=56", "latency_runs=5")
    assert rc == 0, err
    assert "onnxruntime latency batch=1: median" in stdout and "RANDOM WEIGHTS" in stdout
    assert "at 48x80" in stdout  # parity also at a height/width the graph was not traced with
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (inp,) = sess.get_inputs()
    assert len(inp.shape) == 4 and inp.shape[3] == 3 and all(isinstance(d, str) for d in inp.shape[:3])
    ref = egohod.load_encoder("egovideo_tiny", seed=0)
    for shape in [(3, 40, 56, 3), (1, 64, 36, 3)]:  # robot camera frames of any size
        x = torch.randint(0, 256, shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
        (z,) = sess.run(["embedding"], {"frames": x.numpy()})
        np.testing.assert_allclose(z, ref(x).numpy(), atol=1e-4)
    card = _card(out)
    assert card["variant"] == "egovideo_tiny" and card["weights"] == "RANDOM WEIGHTS:seed=0"
    assert card["input"]["shape"] == ["B", "H", "W", 3] and card["input"]["single_frame"]
    assert card["output"]["shape"] == ["B", 32] and card["precision"] == "float32"
    assert card["parity"]["ok"] and card["parity"]["max_abs_diff"] <= 1e-3 and len(card["parity"]["cases"]) == 3
    assert card["latency"]["batch"] == 1 and card["latency"]["runs"] == 5 and card["latency"]["median_ms"] > 0


def test_torchscript_fp16_defaults_from_the_spec(tmp_path, capsys):
    out = tmp_path / "enc16.pt"
    rc, stdout, err = _run(capsys, "encoder=egovideo_tiny", "format=torchscript", f"out={out}", "fp16=true")
    assert rc == 0, err
    result = json.loads(stdout[stdout.index("{"):])
    assert result["input"] == "uint8 [B, 4, 32, 32, 3]"  # frames and size from the variant's input spec
    m = torch.jit.load(str(out))
    assert {p.dtype for p in m.parameters()} == {torch.float16}
    x = torch.randint(0, 256, (2, 4, 32, 32, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        z, ref = m(x), egohod.load_encoder("egovideo_tiny", seed=0)(x)
    assert z.dtype == torch.float32
    diff = float((z - ref).abs().max())
    assert 0 < diff <= 1e-2  # really float16 compute, and still close to the float32 encoder
    card = _card(out)
    assert card["precision"] == "float16" and card["parity"]["tol"] == 1e-2
    assert card["input"]["shape"] == ["B", 4, 32, 32, 3] and "latency" not in card


def test_card_names_the_checkpoint_sha256_and_bad_combinations_are_refused(tmp_path, capsys):
    from egohod.models.checkpoint_io import file_sha256

    weights = tmp_path / "w.safetensors"
    assert _run(capsys, "encoder=egovideo_tiny", "format=safetensors", f"out={weights}", "seed=4")[0] == 0
    out = tmp_path / "enc.pt"
    rc, stdout, _ = _run(capsys, "encoder=egovideo_tiny", "format=torchscript", f"out={out}", f"checkpoint={weights}",
                         "single_frame=true")
    assert rc == 0 and "RANDOM WEIGHTS" not in stdout
    card = _card(out)
    assert card["weights"] == file_sha256(weights) and card["input"]["shape"] == ["B", 32, 32, 3]
    rc, _, err = _run(capsys, "encoder=egovideo_tiny", "format=torchscript", f"out={out}", "dynamic_hw=true")
    assert rc == 2 and "dynamic_hw=true needs format=onnx" in err
    rc, _, err = _run(capsys, "encoder=egovideo_tiny", "format=safetensors", f"out={weights}", "fp16=true")
    assert rc == 2 and "single_frame and fp16 shape a graph" in err
