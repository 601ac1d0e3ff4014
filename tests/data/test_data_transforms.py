"""The video transforms against references built without this package's helpers (PIL bicubic
resampling in float mode, torchvision's RandomResizedCrop draws, the documented CLIP constants):
eval = resize short side + centre crop + CLIP mean/std on 0..1 pixels; train = one crop, one
resize, flip. Also: the uint8 path stays within rounding of the float32 path; the crop is drawn at
the training short side; clips are joined without copies."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from egohod.data.datasets import concat_clips
from egohod.data.transforms import VideoTransform
from egohod.models.spec import CLIP_MEAN, CLIP_STD

# OpenAI CLIP's normalisation constants, as published (not read from this package)
CLIP_MEAN_DOC = np.array([0.48145466, 0.4578275, 0.40821073], np.float32)
CLIP_STD_DOC = np.array([0.26862954, 0.26130258, 0.27577711], np.float32)


def _smooth_frames(t=3, h=320, w=480, seed=0):
    """Natural-image-like frames (smooth gradients + blobs): bicubic overshoot stays small."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = np.empty((t, h, w, 3), np.uint8)
    for k in range(t):
        img = np.zeros((h, w, 3), np.float32)
        for c in range(3):
            a, b, p = rng.uniform(0.005, 0.03, 3)
            img[..., c] = 127 + 100 * np.sin(a * xx + b * yy + p * k + c)
        out[k] = np.clip(img, 0, 255).astype(np.uint8)
    return out


def _pil_bicubic(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """``[H, W, 3]`` float 0..1 -> ``[height, width, 3]``: PIL bicubic per channel in float ("F")
    mode, i.e. no rounding; PIL widens the kernel when shrinking (antialiasing)."""
    return np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(img[..., c]), mode="F")
                                .resize((width, height), Image.BICUBIC)) for c in range(3)], axis=-1)


def _clip_normalise(frames_thwc: np.ndarray) -> torch.Tensor:
    """``[T, S, S, 3]`` 0..1 -> ``[3, T, S, S]`` with the published CLIP mean/std."""
    return torch.from_numpy(((frames_thwc - CLIP_MEAN_DOC) / CLIP_STD_DOC).transpose(3, 0, 1, 2).copy())


def _reference_eval(frames: np.ndarray, size: int, short: int) -> torch.Tensor:
    """Resize the short side to ``short`` (long side ``int(short * long / short_side)``), centre
    crop ``size`` (torchvision's ``int(round((H - size) / 2))``), CLIP mean/std on 0..1 pixels."""
    out = []
    for f in frames.astype(np.float32) / 255.0:
        h, w = f.shape[:2]
        nh, nw = (short, int(short * w / h)) if h <= w else (int(short * h / w), short)
        if (nh, nw) != (h, w):
            f = _pil_bicubic(f, nh, nw)
        top, left = int(round((nh - size) / 2.0)), int(round((nw - size) / 2.0))
        out.append(f[top: top + size, left: left + size])
    return _clip_normalise(np.stack(out))


def _reference_train(frames: np.ndarray, size: int, seed: int) -> tuple[torch.Tensor, bool]:
    """torchvision's ``RandomResizedCrop(size, scale=(0.5, 1), ratio=(3/4, 4/3))`` box and
    ``RandomHorizontalFlip`` draw from the seeded global RNG, one box for every frame; the crop
    resized by PIL bicubic; CLIP mean/std. ``frames`` are at the training short side already."""
    from torchvision.transforms import RandomResizedCrop

    x = frames.astype(np.float32) / 255.0
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        top, left, ch, cw = RandomResizedCrop.get_params(torch.zeros(3, *x.shape[1:3]), (0.5, 1.0), (3 / 4, 4 / 3))
        flip = float(torch.rand(1)) < 0.5
    out = np.stack([_pil_bicubic(f[top: top + ch, left: left + cw], size, size) for f in x])
    return _clip_normalise(out[:, :, ::-1] if flip else out), flip


def test_clip_constants_are_the_published_ones():
    np.testing.assert_array_equal(np.array(CLIP_MEAN, np.float32), CLIP_MEAN_DOC)
    np.testing.assert_array_equal(np.array(CLIP_STD, np.float32), CLIP_STD_DOC)


def test_float_path_equals_the_reference_at_the_training_short_side():
    frames = _smooth_frames()  # 320 x 480: already at the training short side
    tf = VideoTransform(224, CLIP_MEAN, CLIP_STD, train=True, train_short_side=320, uint8_resize=False)
    flips = set()
    for seed in range(6):  # covers flipped and unflipped draws
        got = tf(frames, generator=torch.Generator().manual_seed(seed))
        want, flip = _reference_train(frames, 224, seed)
        flips.add(flip)
        assert got.shape == want.shape == (3, 3, 224, 224)
        torch.testing.assert_close(got, want, rtol=0, atol=2e-4)  # PIL vs torch bicubic: float rounding only
    assert flips == {True, False}


def test_uint8_path_is_the_float_path_up_to_rounding():
    frames = _smooth_frames()
    fast = VideoTransform(224, CLIP_MEAN, CLIP_STD, train=True, train_short_side=320)
    slow = VideoTransform(224, CLIP_MEAN, CLIP_STD, train=True, train_short_side=320, uint8_resize=False)
    for seed in range(4):
        a = fast(frames, generator=torch.Generator().manual_seed(seed))
        b = slow(frames, generator=torch.Generator().manual_seed(seed))
        assert a.shape == b.shape == (3, 3, 224, 224) and a.dtype == torch.float32 and a.is_contiguous()
        # in pixel levels: rounding to whole levels and fixed-point weights (~1 level) on smooth content
        diff_levels = ((a - b) * torch.tensor(CLIP_STD).view(3, 1, 1, 1) * 255).abs()
        assert diff_levels.max() <= 1.5 and diff_levels.mean() < 0.5


def test_crop_is_drawn_at_the_training_short_side_and_cut_from_the_input():
    # the same picture stored at 320 and at 640 short side gives (nearly) the same crop
    small = _smooth_frames(h=320, w=480)
    big = torch.from_numpy(small).permute(0, 3, 1, 2).float()
    big = F.interpolate(big, scale_factor=2, mode="bilinear", align_corners=False).round().clamp(0, 255)
    big = big.to(torch.uint8).permute(0, 2, 3, 1).numpy()
    tf = VideoTransform(224, CLIP_MEAN, CLIP_STD, train=True, train_short_side=320)
    for seed in range(3):
        a = tf(small, generator=torch.Generator().manual_seed(seed))
        b = tf(big, generator=torch.Generator().manual_seed(seed))
        assert (a - b).abs().mean() < 0.05, seed  # normalised units; a shifted crop would be ~0.5


@pytest.mark.parametrize("shape", [(200, 300), (320, 480), (301, 200), (224, 224)])
def test_eval_transform_matches_resize_crop_normalise_reference(shape):
    frames = _smooth_frames(t=2, h=shape[0], w=shape[1])
    tf = VideoTransform(224, CLIP_MEAN, CLIP_STD, resize=224, train=False)
    got = tf(frames)
    assert got.shape == (3, 2, 224, 224) and got.dtype == torch.float32
    torch.testing.assert_close(got, _reference_eval(frames, 224, 224), rtol=0, atol=2e-4)
    # resize short side 256, then the 224 centre crop (a spec with resize_size != image_size)
    tf = VideoTransform(224, CLIP_MEAN, CLIP_STD, resize=256, train=False)
    torch.testing.assert_close(tf(frames), _reference_eval(frames, 224, 256), rtol=0, atol=2e-4)


def test_concat_clips_is_a_view_for_consecutive_slices():
    base = np.arange(20 * 4 * 5 * 3, dtype=np.uint8).reshape(20, 4, 5, 3)
    clips = [base[:4], base[4:]]
    joined = concat_clips(clips)
    np.testing.assert_array_equal(joined, base)
    assert joined.__array_interface__["data"][0] == base.__array_interface__["data"][0]  # no copy
    np.testing.assert_array_equal(concat_clips([base[2:4], base[4:9]]), base[2:9])
    separate = [base[:4].copy(), base[4:].copy()]
    np.testing.assert_array_equal(concat_clips(separate), base)
    assert not np.shares_memory(concat_clips(separate), separate[0])
    np.testing.assert_array_equal(concat_clips([base[4:], base[:4]]), np.concatenate([base[4:], base[:4]]))
    np.testing.assert_array_equal(concat_clips([base[:4], base[5:]]), np.concatenate([base[:4], base[5:]]))  # gap
