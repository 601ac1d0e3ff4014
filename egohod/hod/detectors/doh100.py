"""``100doh``: the 100DOH hand-object detector (Shan et al., CVPR 2020) rebuilt on torchvision ops.

A Faster R-CNN with a caffe-style ResNet-101 (stride on the first 1x1 conv of a bottleneck,
ceil-mode max-pool, BGR input minus pixel means, no std), a single-scale RPN on the stride-16
``layer3`` map with 12 anchors (scales 8/16/32/64 x ratios 0.5/1/2), RoIAlign 7x7 and ``layer4``
as the box head, plus three extra heads on the pooled features:

* contact state (5 classes N/S/O/P/F) on features of the RoI enlarged by 30 %,
* offset ``[mag, dx, dy]`` on the enlarged RoI, with ``(dx, dy)`` L2-normalised and scaled by 0.1,
* hand side (sigmoid > 0.5 = right) on the RoI itself.

Classes: 0 background, 1 object ("targetobject"), 2 hand. The module names follow the released
checkpoint (``faster_rcnn_1_8_132028.pth``: a dict whose ``"model"`` entry holds keys such as
``RCNN_base.4.0.conv1.weight``, ``RCNN_top.0.2.bn3.running_var``, ``RCNN_rpn.RPN_Conv.weight``,
``RCNN_cls_score.weight``, ``RCNN_bbox_pred.weight``,
``extension_layer.hand_contact_state_layer.3.weight``, ``extension_layer.hand_dydx_layer.weight``,
``extension_layer.hand_lr_layer.weight``), so the file loads strictly. The weights are not
redistributable: pass the path of your copy (``detector.checkpoint=...``).

Deviations from the reference code, on purpose: RPN outputs padded with all-zero boxes (when NMS
keeps fewer than ``post_nms_top_n`` proposals) are dropped instead of being classified, and
detections whose clipped box has zero width or height (flattened against the image border) are
dropped before the final NMS.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...device import resolve_device
from ...safe_load import load_torch
from ..types import CONTACT_STATES, FrameDetections, HandDetection, ObjectDetection
from .base import ClipFrames, Detector, register_detector

PIXEL_MEANS_BGR = (102.9801, 115.9465, 122.7717)
BBOX_STDS = (0.1, 0.1, 0.2, 0.2)
CLASSES = ("__background__", "targetobject", "hand")


@dataclass(frozen=True)
class RCNNTestConfig:
    scale: int = 600  # short side of the network input
    max_size: int = 1000  # cap on the long side
    pre_nms_top_n: int = 6000
    post_nms_top_n: int = 300
    rpn_nms: float = 0.7
    test_nms: float = 0.3
    pooling_mode: str = "align"  # "align" | "pool" (the checkpoint's "pooling_mode" wins)


# ----------------------------------------------------------------------------- backbone
class CaffeBottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        return self.relu(self.bn3(self.conv3(y)) + idt)


def _stage(inplanes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    down = None
    if stride != 1 or inplanes != planes * 4:
        down = nn.Sequential(nn.Conv2d(inplanes, planes * 4, 1, stride=stride, bias=False), nn.BatchNorm2d(planes * 4))
    layers = [CaffeBottleneck(inplanes, planes, stride, down)]
    layers += [CaffeBottleneck(planes * 4, planes) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


# ----------------------------------------------------------------------------- anchors / boxes
def generate_anchors(base_size: int = 16, ratios=(0.5, 1, 2), scales=(8, 16, 32, 64)) -> np.ndarray:
    """Reference anchors [A, 4] around the (0, 0, base-1, base-1) window, ratio-major order,
    with the legacy Faster R-CNN rounding and ``+1`` sizes."""
    w = h = float(base_size)
    cx = cy = 0.5 * (base_size - 1)
    out = []
    for r in ratios:
        ws = np.round(np.sqrt(w * h / r))
        hs = np.round(ws * r)
        for s in scales:
            sw, sh = ws * s, hs * s
            out.append([cx - 0.5 * (sw - 1), cy - 0.5 * (sh - 1), cx + 0.5 * (sw - 1), cy + 0.5 * (sh - 1)])
    return np.array(out, dtype=np.float64)


def decode_boxes(boxes: torch.Tensor, deltas: torch.Tensor) -> torch.Tensor:
    """Apply (dx, dy, dw, dh) deltas [..., 4k] to boxes [..., 4] (legacy ``+1`` widths)."""
    w = boxes[..., 2] - boxes[..., 0] + 1.0
    h = boxes[..., 3] - boxes[..., 1] + 1.0
    cx = boxes[..., 0] + 0.5 * w
    cy = boxes[..., 1] + 0.5 * h
    dx, dy, dw, dh = deltas[..., 0::4], deltas[..., 1::4], deltas[..., 2::4], deltas[..., 3::4]
    pcx = dx * w[..., None] + cx[..., None]
    pcy = dy * h[..., None] + cy[..., None]
    pw = torch.exp(dw) * w[..., None]
    ph = torch.exp(dh) * h[..., None]
    out = torch.stack([pcx - 0.5 * pw, pcy - 0.5 * ph, pcx + 0.5 * pw, pcy + 0.5 * ph], -1)
    return out.flatten(-2)


def clip_to_image(boxes: torch.Tensor, height: float, width: float) -> torch.Tensor:
    b = boxes.clone()
    b[..., 0::4] = b[..., 0::4].clamp(0, width - 1)
    b[..., 1::4] = b[..., 1::4].clamp(0, height - 1)
    b[..., 2::4] = b[..., 2::4].clamp(0, width - 1)
    b[..., 3::4] = b[..., 3::4].clamp(0, height - 1)
    return b


def legacy_nms(boxes: torch.Tensor, scores: torch.Tensor, thresh: float) -> torch.Tensor:
    """NMS with the legacy ``+1`` box areas (shifting x2, y2 by one gives the same IoU)."""
    from torchvision.ops import nms

    return nms(boxes + boxes.new_tensor([0, 0, 1, 1]), scores, thresh)


# ----------------------------------------------------------------------------- heads
class RPN(nn.Module):
    def __init__(self, din: int = 1024, num_anchors: int = 12):
        super().__init__()
        self.num_anchors = num_anchors
        self.RPN_Conv = nn.Conv2d(din, 512, 3, 1, 1)
        self.RPN_cls_score = nn.Conv2d(512, 2 * num_anchors, 1)
        self.RPN_bbox_pred = nn.Conv2d(512, 4 * num_anchors, 1)

    def forward(self, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Foreground probabilities [B, H*W*A] and deltas [B, H*W*A, 4], position-major order."""
        x = F.relu(self.RPN_Conv(feat))
        logits = self.RPN_cls_score(x)
        B, _, H, W = logits.shape
        A = self.num_anchors
        # channels [0, A) are background and [A, 2A) foreground logits of the same anchors
        fg = torch.softmax(logits.view(B, 2, A, H, W), dim=1)[:, 1]
        fg = fg.permute(0, 2, 3, 1).reshape(B, -1)
        deltas = self.RPN_bbox_pred(x).permute(0, 2, 3, 1).reshape(B, -1, 4)
        return fg, deltas


class ExtensionHeads(nn.Module):
    """Contact state, offset and hand-side heads (names as in the released checkpoint)."""

    def __init__(self, dim: int = 2048):
        super().__init__()
        self.hand_contact_state_layer = nn.Sequential(nn.Linear(dim, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 5))
        self.hand_dydx_layer = nn.Linear(dim, 3)
        self.hand_lr_layer = nn.Linear(dim, 1)

    def forward(self, feat: torch.Tensor, feat_padded: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        contact = self.hand_contact_state_layer(feat_padded).argmax(-1)
        raw = self.hand_dydx_layer(feat_padded)
        offset = torch.cat([raw[:, :1], 0.1 * F.normalize(raw[:, 1:], p=2, dim=1)], 1)
        right = torch.sigmoid(self.hand_lr_layer(feat)).squeeze(-1) > 0.5
        return contact, offset, right


class HandObjectRCNN(nn.Module):
    """The 100DOH network. ``forward(images_bgr_minus_mean [B,3,H,W], sizes [(h, w)]*B)`` returns
    per image the proposals, class probabilities, regressed boxes and the extra-head outputs."""

    def __init__(self, class_agnostic: bool = False, layers=(3, 4, 23, 3), cfg: RCNNTestConfig = RCNNTestConfig()):
        super().__init__()
        self.cfg = cfg
        self.class_agnostic = class_agnostic
        n_cls = len(CLASSES)
        self.RCNN_base = nn.Sequential(
            nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=0, ceil_mode=True),
            _stage(64, 64, layers[0], 1),
            _stage(256, 128, layers[1], 2),
            _stage(512, 256, layers[2], 2),
        )
        self.RCNN_top = nn.Sequential(_stage(1024, 512, layers[3], 2))
        self.RCNN_rpn = RPN(1024, 12)
        self.RCNN_cls_score = nn.Linear(2048, n_cls)
        self.RCNN_bbox_pred = nn.Linear(2048, 4 if class_agnostic else 4 * n_cls)
        self.extension_layer = ExtensionHeads(2048)
        self.register_buffer("_anchors", torch.from_numpy(generate_anchors()).float(), persistent=False)

    # -------------------------------------------------------------- stages
    def proposals(self, feat: torch.Tensor, sizes: list[tuple[int, int]]) -> list[torch.Tensor]:
        fg, deltas = self.RCNN_rpn(feat)
        fg, deltas = fg.float(), deltas.float()  # box arithmetic in fp32 even under autocast
        B, _, H, W = feat.shape
        stride = 16
        sy, sx = torch.meshgrid(torch.arange(H, device=feat.device) * stride,
                                torch.arange(W, device=feat.device) * stride, indexing="ij")
        shifts = torch.stack([sx, sy, sx, sy], -1).reshape(-1, 1, 4).float()
        anchors = (self._anchors.to(feat.device)[None] + shifts).reshape(-1, 4)
        out = []
        for b in range(B):
            boxes = clip_to_image(decode_boxes(anchors, deltas[b]), *sizes[b])
            order = fg[b].argsort(descending=True)[: self.cfg.pre_nms_top_n]
            keep = legacy_nms(boxes[order], fg[b][order], self.cfg.rpn_nms)[: self.cfg.post_nms_top_n]
            out.append(boxes[order][keep])
        return out

    def _pool(self, feat: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        from torchvision.ops import roi_align, roi_pool

        if self.cfg.pooling_mode == "align":
            return roi_align(feat, rois, (7, 7), spatial_scale=1 / 16.0, sampling_ratio=0, aligned=False)
        if self.cfg.pooling_mode == "pool":
            return roi_pool(feat, rois, (7, 7), spatial_scale=1 / 16.0)
        raise ValueError(f"pooling_mode must be 'align' or 'pool', got {self.cfg.pooling_mode!r}")

    @staticmethod
    def enlarge(rois: torch.Tensor, sizes, ratio: float = 0.3) -> torch.Tensor:
        """RoIs grown by ``ratio`` of their size on each side, clamped at 0 and, as in the
        reference implementation, x2 at the image *height* and y2 at the image *width*."""
        r = rois.clone()
        w = rois[:, 3] - rois[:, 1]
        h = rois[:, 4] - rois[:, 2]
        r[:, 1] = (r[:, 1] - ratio * w).clamp(min=0)
        r[:, 2] = (r[:, 2] - ratio * h).clamp(min=0)
        hh = torch.tensor([sizes[int(i)][0] for i in rois[:, 0]], dtype=r.dtype, device=r.device)
        ww = torch.tensor([sizes[int(i)][1] for i in rois[:, 0]], dtype=r.dtype, device=r.device)
        r[:, 3] = torch.minimum(r[:, 3] + ratio * w, hh)
        r[:, 4] = torch.minimum(r[:, 4] + ratio * h, ww)
        return r

    def head(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.RCNN_top(pooled).mean(3).mean(2)

    @torch.no_grad()
    def forward(self, images: torch.Tensor, sizes: list[tuple[int, int]]) -> list[dict]:
        feat = self.RCNN_base(images)
        props = self.proposals(feat, sizes)
        rois = torch.cat([torch.cat([torch.full_like(p[:, :1], b), p], 1) for b, p in enumerate(props)], 0)
        fc = self.head(self._pool(feat, rois))
        fc_pad = self.head(self._pool(feat, self.enlarge(rois, sizes)))
        probs = torch.softmax(self.RCNN_cls_score(fc).float(), -1)
        stds = rois.new_tensor(BBOX_STDS).repeat(1 if self.class_agnostic else len(CLASSES))
        deltas = self.RCNN_bbox_pred(fc).float() * stds
        contact, offset, right = self.extension_layer(fc, fc_pad)
        offset = offset.float()
        boxes = decode_boxes(rois[:, 1:], deltas)
        out, start = [], 0
        for b, p in enumerate(props):
            sl = slice(start, start + len(p))
            start += len(p)
            out.append({"boxes": clip_to_image(boxes[sl], *sizes[b]), "probs": probs[sl], "contact": contact[sl],
                        "offset": offset[sl], "right": right[sl]})
        return out


# ----------------------------------------------------------------------------- checkpoint
def load_state_dict_file(path: str | Path, trust_pickle: bool = False) -> tuple[dict, dict]:
    """The model state dict and metadata (``pooling_mode``, ``class_agnostic``, ...) of a 100DOH
    checkpoint file (a dict with a ``"model"`` entry, or a bare state dict), read with
    :func:`egohod.safe_load.load_torch`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"100DOH checkpoint {path} does not exist (download faster_rcnn_1_8_132028.pth "
                                "from the 100DOH project page and pass detector.checkpoint=PATH)")
    obj = load_torch(path, trust_pickle=trust_pickle, what="100DOH checkpoint")
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        meta = {k: v for k, v in obj.items() if k not in ("model", "optimizer")}
        return obj["model"], meta
    if isinstance(obj, dict) and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj, {}
    raise ValueError(f"{path}: expected a dict with a 'model' state dict (100DOH checkpoint), got {type(obj).__name__} "
                     f"with keys {list(obj)[:8] if isinstance(obj, dict) else '-'}")


def build_from_state_dict(sd: dict, meta: dict | None = None, cfg: RCNNTestConfig = RCNNTestConfig()) -> HandObjectRCNN:
    """Build the network matching ``sd`` (class-agnostic or not, from the box head's shape) and load
    it strictly. ``num_batches_tracked`` buffers are optional (older PyTorch did not save them)."""
    meta = meta or {}
    sd = {k[len("module."):] if k.startswith("module.") else k: v for k, v in sd.items()}
    if "RCNN_bbox_pred.weight" not in sd:
        raise KeyError("not a 100DOH state dict: 'RCNN_bbox_pred.weight' missing "
                       f"(first keys: {sorted(sd)[:5]})")
    agnostic = sd["RCNN_bbox_pred.weight"].shape[0] == 4
    if "pooling_mode" in meta:
        cfg = RCNNTestConfig(**{**cfg.__dict__, "pooling_mode": str(meta["pooling_mode"])})
    with torch.device("meta"):  # no random init: every tensor comes from the file
        model = HandObjectRCNN(class_agnostic=agnostic, cfg=cfg)
    own = model.state_dict()
    for k in own:
        if k.endswith("num_batches_tracked") and k not in sd:
            sd[k] = torch.tensor(0, dtype=torch.long)
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    if missing or unexpected:
        raise KeyError(f"100DOH state dict does not match the ResNet-101 hand-object detector: "
                       f"{len(missing)} missing (e.g. {missing[:4]}), {len(unexpected)} unexpected (e.g. {unexpected[:4]})")
    bad = [(k, tuple(sd[k].shape), tuple(v.shape)) for k, v in own.items() if sd[k].shape != v.shape]
    if bad:
        raise ValueError(f"100DOH state dict shape mismatch (key, file, model): {bad[:4]}")
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in sd.items()}, strict=True,
                          assign=True)
    model._anchors = torch.from_numpy(generate_anchors()).float()
    return model.eval()


# ----------------------------------------------------------------------------- detector
def preprocess(frames_rgb: np.ndarray, scale: int, max_size: int) -> tuple[torch.Tensor, tuple[int, int], float]:
    """uint8 RGB [T, H, W, 3] -> BGR minus pixel means [T, 3, h, w] at the test scale."""
    T, H, W, _ = frames_rgb.shape
    s = scale / min(H, W)
    if round(s * max(H, W)) > max_size:
        s = max_size / max(H, W)
    h, w = int(round(H * s)), int(round(W * s))
    x = torch.from_numpy(np.ascontiguousarray(frames_rgb[..., ::-1])).permute(0, 3, 1, 2).float()
    x = x - torch.tensor(PIXEL_MEANS_BGR).view(1, 3, 1, 1)
    x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
    return x.contiguous(), (h, w), s


def postprocess(out: dict, scale: float, width: int, height: int, time: float, hand_threshold: float,
                object_threshold: float, nms: float, class_agnostic: bool) -> FrameDetections:
    hands, objects = [], []
    for cls, thresh in ((1, object_threshold), (2, hand_threshold)):
        scores = out["probs"][:, cls]
        idx = torch.nonzero(scores > thresh).flatten()
        if idx.numel() == 0:
            continue
        boxes = out["boxes"][idx] if class_agnostic else out["boxes"][idx][:, 4 * cls: 4 * cls + 4]
        nondegenerate = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        idx, boxes = idx[nondegenerate], boxes[nondegenerate]
        if idx.numel() == 0:
            continue
        keep = idx[legacy_nms(boxes, scores[idx], nms)]
        boxes = (out["boxes"][keep] if class_agnostic else out["boxes"][keep][:, 4 * cls: 4 * cls + 4]) / scale
        norm = (boxes / boxes.new_tensor([width, height, width, height])).clamp(0, 1).cpu().numpy()
        for j, k in enumerate(keep.tolist()):
            if cls == 1:
                objects.append(ObjectDetection(tuple(norm[j]), float(scores[k])))
            else:
                hands.append(HandDetection(tuple(norm[j]), float(scores[k]), CONTACT_STATES[int(out["contact"][k])],
                                           "right" if bool(out["right"][k]) else "left",
                                           tuple(float(v) for v in out["offset"][k])))
    return FrameDetections(float(time), int(width), int(height), hands, objects)


@dataclass
class Options:
    checkpoint: Optional[str] = None  # faster_rcnn_1_8_132028.pth (handobj_100K+ego), user-supplied
    device: str = "auto"  # cuda when available
    batch_size: int = 16  # frames per forward pass
    hand_threshold: float = 0.5
    object_threshold: float = 0.5
    scale: int = 600  # network input short side (the reference test scale)
    max_size: int = 1000  # network input long side at most
    post_nms_top_n: int = 300  # RPN proposals kept per image
    fp16: bool = False  # autocast on CUDA


@register_detector("100doh", options=Options)
class Doh100Detector(Detector):
    """100DOH Faster R-CNN ResNet-101 hand-object detector (user-supplied official checkpoint).
    ``model``: an already built network (tests, benchmarks) instead of ``options.checkpoint``."""

    name = "100doh"
    needs_pixels = True

    def __init__(self, options: Options = Options(), model: HandObjectRCNN | None = None):
        if model is None:
            if not options.checkpoint:
                raise ValueError("detector 100doh needs detector.checkpoint=PATH to faster_rcnn_1_8_132028.pth")
            sd, meta = load_state_dict_file(options.checkpoint)
            model = build_from_state_dict(sd, meta, RCNNTestConfig(scale=options.scale, max_size=options.max_size,
                                                                   post_nms_top_n=options.post_nms_top_n))
        self.device = resolve_device(options.device, "detector.device")
        self.model = model.to(self.device).eval()
        self.batch_size = int(options.batch_size)
        self.hand_threshold, self.object_threshold = float(options.hand_threshold), float(options.object_threshold)
        self.fp16 = bool(options.fp16) and self.device.type == "cuda"

    def detect(self, clip: ClipFrames) -> list[FrameDetections]:
        return self.detect_batch([clip])[0]

    def detect_batch(self, clips: list[ClipFrames]) -> list[list[FrameDetections]]:
        """All frames of all clips go through the network in batches of ``batch_size`` frames
        (grouped by frame size)."""
        cfg = self.model.cfg
        items = [(ci, t) for ci, c in enumerate(clips) for t in range(len(c.times))]
        results: dict = {}
        by_size: dict = {}
        for ci, t in items:
            px = clips[ci].pixels
            if px is None or px.ndim != 4 or px.dtype != np.uint8:
                raise ValueError(f"100doh detector needs uint8 frames [T, H, W, 3] for {clips[ci].video_id}")
            by_size.setdefault(px.shape[1:3], []).append((ci, t))
        for (H, W), group in by_size.items():
            for i in range(0, len(group), self.batch_size):
                chunk = group[i: i + self.batch_size]
                frames = np.stack([clips[ci].pixels[t] for ci, t in chunk])
                x, hw, s = preprocess(frames, cfg.scale, cfg.max_size)
                with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.fp16):
                    outs = self.model(x.to(self.device), [hw] * len(chunk))
                for (ci, t), o in zip(chunk, outs):
                    o = {k: v.float() if v.is_floating_point() else v for k, v in o.items()}
                    results[(ci, t)] = postprocess(o, s, W, H, clips[ci].times[t], self.hand_threshold,
                                                   self.object_threshold, cfg.test_nms, self.model.class_agnostic)
        return [[results[(ci, t)] for t in range(len(c.times))] for ci, c in enumerate(clips)]


