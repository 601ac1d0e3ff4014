"""CLIP BPE tokenizer (known ids, SOT/EOT, padding, truncation), the G tokenizer's local-vocab
rule, and the video transforms (shapes, normalisation, shared crop, determinism)."""
import numpy as np
import pytest
import torch

import egohod
from egohod.data.transforms import random_resized_crop_params


@pytest.fixture(scope="module")
def tok():
    return egohod.get_tokenizer("egovideo_b")


def test_known_token_ids(tok):
    ids = tok("#C C opens the fridge")
    assert ids.shape == (1, 77) and ids.dtype == torch.long
    # '#</w>'=258, 'c</w>'=322, 'opens</w>'=4801, 'the</w>'=518, 'fridge</w>'=13491 in CLIP's BPE vocabulary
    assert ids[0, :8].tolist() == [49406, 258, 322, 322, 4801, 518, 13491, 49407]
    assert ids[0, 8:].eq(0).all()
    assert tok.decode(ids[0]) == "# c c opens the fridge"


def test_case_whitespace_and_batch(tok):
    a = tok(["Opens   THE fridge", "opens the fridge"])
    assert a.shape == (2, 77) and torch.equal(a[0], a[1])


def test_truncation_keeps_eot_last(tok):
    ids = tok(["fridge " * 200])
    assert ids.shape == (1, 77) and ids[0, 0] == 49406 and ids[0, -1] == 49407 and ids[0, 1:-1].eq(13491).all()


def test_bad_text_type(tok):
    with pytest.raises(TypeError, match="strings"):
        tok(["ok", 3])


def test_g_tokenizer_needs_local_vocab(tmp_path, monkeypatch):
    from egohod.tokenizer import get_tokenizer

    monkeypatch.delenv("EGOHOD_BERT_PATH", raising=False)
    with pytest.raises(FileNotFoundError, match="never downloads.*bert_path"):
        egohod.get_tokenizer("egovideo_g")
    with pytest.raises(FileNotFoundError, match="no BERT vocabulary"):
        get_tokenizer("egovideo_g", bert_path=tmp_path)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "c", "opens", "the", "fridge", "#"]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    monkeypatch.setenv("EGOHOD_BERT_PATH", str(tmp_path))
    ids = get_tokenizer("egovideo_g")(["#C C opens the fridge"])
    assert ids.shape == (1, 40)
    assert ids[0, :8].tolist() == [2, 9, 5, 5, 6, 7, 8, 3] and ids[0, 8:].eq(0).all()


def _clip(t=4, h=60, w=90, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (t, h, w, 3), dtype=torch.uint8, generator=g)


def test_eval_transform_shape_and_normalisation():
    tf = egohod.create_transforms("egovideo_b")
    out = tf(_clip())
    assert out.shape == (3, 4, 224, 224) and out.dtype == torch.float32
    flat = torch.full((2, 300, 400, 3), 255, dtype=torch.uint8)
    flat[..., 1] = 0
    v = tf(flat)
    s = egohod.get_input_spec("egovideo_b")
    expect = [(1 - s.mean[0]) / s.std[0], (0 - s.mean[1]) / s.std[1], (1 - s.mean[2]) / s.std[2]]
    for c in range(3):
        torch.testing.assert_close(v[c], torch.full_like(v[c], expect[c]), atol=1e-4, rtol=0)


def test_eval_is_resize_short_side_then_centre_crop():
    tf = egohod.create_transforms("egovideo_tiny")
    x = torch.zeros(1, 64, 128, 3, dtype=torch.uint8)
    x[:, :, 48:80] = 255  # a white band in the middle 32 of 128 columns -> middle 8 of 64 after resize
    out = tf(x)  # 64x128 -> 32x64 -> crop columns 16..48
    white = out[0, 0, 16] > 0
    assert white[:4].sum() == 0 and white[-4:].sum() == 0 and white[12:20].all()


def test_train_transform_same_crop_all_frames_and_deterministic():
    base = _clip(t=1, h=200, w=300)
    clip = torch.cat([base, base, base], 0)
    tf = egohod.create_transforms("egovideo_tiny", train=True)
    a = tf(clip, generator=torch.Generator().manual_seed(7))
    b = tf(clip, generator=torch.Generator().manual_seed(7))
    c = tf(clip, generator=torch.Generator().manual_seed(8))
    assert a.shape == (3, 3, 32, 32)
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)
    torch.testing.assert_close(a[:, 0], a[:, 1])
    torch.testing.assert_close(a[:, 0], a[:, 2])


def test_random_resized_crop_params_in_range():
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        top, left, h, w = random_resized_crop_params(320, 480, (0.5, 1.0), generator=g)
        assert 0 <= top and top + h <= 320 and 0 <= left and left + w <= 480
        assert 0.5 * 320 * 480 * 0.95 <= h * w <= 320 * 480
        assert 3 / 4 - 0.02 <= w / h <= 4 / 3 + 0.02


def test_transform_input_errors():
    tf = egohod.create_transforms("egovideo_tiny")
    with pytest.raises(TypeError, match="uint8"):
        tf(np.zeros((4, 32, 32, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="channels-last"):
        tf(torch.zeros(4, 3, 32, 32, dtype=torch.uint8))
