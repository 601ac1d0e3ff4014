"""The ``100doh`` detector: built from a state dict written with the released checkpoint's key
names and shapes (derived here from the architecture, independently of the module), loaded
strictly, and run on small frames."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from egohod.hod.detectors import ClipFrames, create_detector
from egohod.hod.detectors.doh100 import build_from_state_dict, decode_boxes, generate_anchors, load_state_dict_file


def official_key_shapes(layers=(3, 4, 23, 3), class_agnostic=False) -> dict:
    """Keys of faster_rcnn_1_8_132028.pth["model"]: RCNN_base = Sequential(conv1, bn1, relu, maxpool,
    layer1..3), RCNN_top = Sequential(layer4), RPN with 12 anchors, 3 classes, extension heads."""
    shapes = {}

    def bn(p, c):
        shapes.update({f"{p}.weight": (c,), f"{p}.bias": (c,), f"{p}.running_mean": (c,), f"{p}.running_var": (c,),
                       f"{p}.num_batches_tracked": ()})

    def stage(prefix, cin, planes, blocks):
        for i in range(blocks):
            p, c = f"{prefix}.{i}", (cin if i == 0 else planes * 4)
            shapes[f"{p}.conv1.weight"] = (planes, c, 1, 1)
            bn(f"{p}.bn1", planes)
            shapes[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
            bn(f"{p}.bn2", planes)
            shapes[f"{p}.conv3.weight"] = (planes * 4, planes, 1, 1)
            bn(f"{p}.bn3", planes * 4)
            if i == 0:
                shapes[f"{p}.downsample.0.weight"] = (planes * 4, c, 1, 1)
                bn(f"{p}.downsample.1", planes * 4)

    shapes["RCNN_base.0.weight"] = (64, 3, 7, 7)
    bn("RCNN_base.1", 64)
    for idx, (cin, planes, n) in zip((4, 5, 6), ((64, 64, layers[0]), (256, 128, layers[1]), (512, 256, layers[2]))):
        stage(f"RCNN_base.{idx}", cin, planes, n)
    stage("RCNN_top.0", 1024, 512, layers[3])
    nb = 4 if class_agnostic else 12
    shapes.update({
        "RCNN_rpn.RPN_Conv.weight": (512, 1024, 3, 3), "RCNN_rpn.RPN_Conv.bias": (512,),
        "RCNN_rpn.RPN_cls_score.weight": (24, 512, 1, 1), "RCNN_rpn.RPN_cls_score.bias": (24,),
        "RCNN_rpn.RPN_bbox_pred.weight": (48, 512, 1, 1), "RCNN_rpn.RPN_bbox_pred.bias": (48,),
        "RCNN_cls_score.weight": (3, 2048), "RCNN_cls_score.bias": (3,),
        "RCNN_bbox_pred.weight": (nb, 2048), "RCNN_bbox_pred.bias": (nb,),
        "extension_layer.hand_contact_state_layer.0.weight": (32, 2048),
        "extension_layer.hand_contact_state_layer.0.bias": (32,),
        "extension_layer.hand_contact_state_layer.3.weight": (5, 32),
        "extension_layer.hand_contact_state_layer.3.bias": (5,),
        "extension_layer.hand_dydx_layer.weight": (3, 2048), "extension_layer.hand_dydx_layer.bias": (3,),
        "extension_layer.hand_lr_layer.weight": (1, 2048), "extension_layer.hand_lr_layer.bias": (1,),
    })
    return shapes


def official_state_dict(seed=0) -> dict:
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, shape in official_key_shapes().items():
        if k.endswith("num_batches_tracked"):
            sd[k] = torch.tensor(100, dtype=torch.long)
        elif k.endswith("running_var"):
            sd[k] = torch.ones(shape)
        elif k.endswith("running_mean") or (k.endswith(".bias") and len(shape) == 1 and "RCNN" not in k.split(".")[0] + "x"):
            sd[k] = torch.zeros(shape)
        elif len(shape) == 4:
            fan_in = shape[1] * shape[2] * shape[3]
            sd[k] = torch.randn(shape, generator=g) * math.sqrt(2.0 / fan_in) * (0.2 if ".conv3." in k else 1.0)
        elif len(shape) == 2:
            sd[k] = torch.randn(shape, generator=g) * 0.01
        else:  # BN weight / bias, linear/conv bias
            sd[k] = torch.ones(shape) if k.endswith(".weight") else torch.zeros(shape)
    return sd


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("doh") / "faster_rcnn_1_8_132028.pth"
    sd = official_state_dict()
    # heads set so every RoI is a right hand in portable contact with a known offset:
    sd["RCNN_cls_score.weight"].zero_()
    sd["RCNN_cls_score.bias"].copy_(torch.tensor([0.0, 0.0, 12.0]))
    sd["RCNN_bbox_pred.weight"].zero_()
    sd["extension_layer.hand_contact_state_layer.3.weight"].zero_()
    sd["extension_layer.hand_contact_state_layer.3.bias"].copy_(torch.tensor([0.0, 0, 0, 5, 0]))
    sd["extension_layer.hand_dydx_layer.weight"].zero_()
    sd["extension_layer.hand_dydx_layer.bias"].copy_(torch.tensor([0.02, 3.0, 4.0]))
    sd["extension_layer.hand_lr_layer.weight"].zero_()
    sd["extension_layer.hand_lr_layer.bias"].fill_(4.0)
    torch.save({"session": 1, "epoch": 9, "model": sd, "optimizer": {}, "pooling_mode": "align",
                "class_agnostic": False}, path)
    return path


def test_reference_anchors():
    # the 9 anchors of py-faster-rcnn's generator (scales 8, 16, 32; ratios 0.5, 1, 2), which trained the
    # released model; the MATLAB values quoted in its comments differ by one pixel (rounding of the centre)
    ref = [[-84, -40, 99, 55], [-176, -88, 191, 103], [-360, -184, 375, 199], [-56, -56, 71, 71],
           [-120, -120, 135, 135], [-248, -248, 263, 263], [-36, -80, 51, 95], [-80, -168, 95, 183],
           [-168, -344, 183, 359]]
    np.testing.assert_array_equal(generate_anchors(scales=(8, 16, 32)), ref)
    assert generate_anchors().shape == (12, 4)


def test_box_decoding_legacy_convention():
    boxes = torch.tensor([[10.0, 20.0, 29.0, 59.0]])  # w = 20, h = 40 with the +1 convention
    same = decode_boxes(boxes, torch.zeros(1, 4))
    np.testing.assert_allclose(same.numpy(), [[10, 20, 30, 60]])  # x2 = ctr + w/2 (no -1), as the reference
    moved = decode_boxes(boxes, torch.tensor([[0.5, 0.0, math.log(2), 0.0]]))
    np.testing.assert_allclose(moved.numpy(), [[10, 20, 50, 60]], atol=1e-5)  # ctr 20 -> 30, w 20 -> 40


def test_official_layout_loads_strictly_and_errors_name_keys(checkpoint):
    sd, meta = load_state_dict_file(checkpoint)
    assert meta["pooling_mode"] == "align"
    model = build_from_state_dict(dict(sd), meta)
    assert not model.class_agnostic and model.cfg.pooling_mode == "align"
    assert torch.equal(model.state_dict()["RCNN_base.6.22.conv3.weight"], sd["RCNN_base.6.22.conv3.weight"])
    # checkpoints without num_batches_tracked (older PyTorch) and with a DataParallel prefix load too
    older = {("module." + k): v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    build_from_state_dict(older, meta)
    broken = dict(sd)
    broken["RCNN_top.0.0.conv_1.weight"] = broken.pop("RCNN_top.0.0.conv1.weight")
    with pytest.raises(KeyError, match=r"1 missing \(e.g. \['RCNN_top.0.0.conv1.weight'\]\).*RCNN_top.0.0.conv_1.weight"):
        build_from_state_dict(broken, meta)
    wrong = dict(sd)
    wrong["RCNN_cls_score.weight"] = torch.zeros(4, 2048)
    with pytest.raises(ValueError, match="RCNN_cls_score.weight"):
        build_from_state_dict(wrong, meta)


def test_detector_runs_and_heads_map_to_100doh_fields(checkpoint):
    det = create_detector("100doh", checkpoint=str(checkpoint), device="cpu", batch_size=2, scale=48,
                          max_size=80, post_nms_top_n=4, hand_threshold=0.5, object_threshold=0.5)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, size=(3, 60, 100, 3), dtype=np.uint8)  # network input 48 x 80
    clips = [ClipFrames("v0", np.array([0.0, 0.5]), frames[:2]), ClipFrames("v1", np.array([2.0]), frames[2:])]
    out = det.detect_batch(clips)  # batches of 2 frames across clips
    assert [len(o) for o in out] == [2, 1]
    f = out[0][1]
    assert f.time == 0.5 and (f.width, f.height) == (100, 60)
    assert f.hands and not f.objects  # class head says "hand" with p ~ 1 for every RoI
    for h in f.hands:
        assert h.score > 0.99 and h.state == "P" and h.side == "right"
        np.testing.assert_allclose(h.offset, (0.02, 0.06, 0.08), atol=1e-6)  # [mag, 0.1 * unit(dx, dy)]
        assert all(0.0 <= v <= 1.0 for v in h.box) and h.box[2] > h.box[0] and h.box[3] > h.box[1]
    # NMS at 0.3 leaves no pair of hands overlapping more than that (legacy +1 IoU)
    from egohod.hod.dynamics import _iou

    for i, a in enumerate(f.hands):
        for b in f.hands[i + 1:]:
            assert _iou(a.box, b.box) <= 0.3 + 0.05
    # the same frame alone gives the same detections as inside a batch
    alone = det.detect(ClipFrames("v0", np.array([0.5]), frames[1:2]))[0]
    np.testing.assert_allclose([h.box for h in alone.hands], [h.box for h in f.hands], atol=1e-5)


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="detector.checkpoint"):
        create_detector("100doh")
    with pytest.raises(FileNotFoundError, match="faster_rcnn_1_8_132028.pth"):
        create_detector("100doh", checkpoint=str(tmp_path / "nope.pth"))


@pytest.mark.gpu
def test_cuda_matches_cpu(checkpoint):
    frames = np.random.default_rng(1).integers(0, 255, size=(2, 60, 100, 3), dtype=np.uint8)
    kw = dict(checkpoint=str(checkpoint), batch_size=2, scale=48, max_size=80, post_nms_top_n=4)
    cpu = create_detector("100doh", device="cpu", **kw).detect(ClipFrames("v", np.array([0.0, 1.0]), frames))
    gpu = create_detector("100doh", device="cuda", **kw).detect(ClipFrames("v", np.array([0.0, 1.0]), frames))
    for a, b in zip(cpu, gpu):
        assert [h.state for h in a.hands] == [h.state for h in b.hands]
        np.testing.assert_allclose([h.box for h in a.hands], [h.box for h in b.hands], atol=2e-3)
