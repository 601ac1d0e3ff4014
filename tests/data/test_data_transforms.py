"""The training transform: crop first, one resize; the uint8 path stays within rounding of the
float32 path; the crop distribution and RNG use are those of resize-to-320-then-crop; clips are
joined without copies."""
import numpy as np
import torch
import torch.nn.functional as F

from egohod.data.datasets import concat_clips
from egohod.data.transforms import VideoTransform, normalize, random_resized_crop_params, resize_short_side
from egohod.models.spec import CLIP_MEAN, CLIP_STD


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


def _reference_train(frames, size, short_side, generator):
    """The transform as it was first written: whole frames to float, resize the short side,
    RandomResizedCrop, resize the crop, flip, normalise."""
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0
    x = resize_short_side(x, short_side)
    top, left, ch, cw = random_resized_crop_params(x.shape[-2], x.shape[-1], (0.5, 1.0), generator=generator)
    x = F.interpolate(x[..., top: top + ch, left: left + cw], size=(size, size), mode="bicubic",
                      align_corners=False, antialias=True)
    if float(torch.rand(1, generator=generator)) < 0.5:
        x = x.flip(-1)
    return normalize(x, CLIP_MEAN, CLIP_STD).permute(1, 0, 2, 3).contiguous()


def test_float_path_equals_the_reference_at_the_training_short_side():
    frames = _smooth_frames()
    tf = VideoTransform(224, CLIP_MEAN, CLIP_STD, train=True, train_short_side=320, uint8_resize=False)
    for seed in range(4):  # covers flipped and unflipped draws
        got = tf(frames, generator=torch.Generator().manual_seed(seed))
        want = _reference_train(frames, 224, 320, torch.Generator().manual_seed(seed))
        torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


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


def test_eval_transform_is_unchanged():
    frames = _smooth_frames(t=2, h=200, w=300)
    tf = VideoTransform(224, CLIP_MEAN, CLIP_STD, resize=224, train=False)
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0
    x = resize_short_side(x, 224)
    top, left = (x.shape[-2] - 224 + 1) // 2, int(round((x.shape[-1] - 224) / 2.0))
    want = normalize(x[..., top: top + 224, left: left + 224], CLIP_MEAN, CLIP_STD).permute(1, 0, 2, 3)
    torch.testing.assert_close(tf(frames), want, rtol=0, atol=0)


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
