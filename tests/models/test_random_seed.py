"""Random weights are a function of (name, seed): load_encoder / create_model draw them from a
forked, seeded RNG, label them "random:seed=N" and leave the caller's RNG alone."""
import pytest
import torch

import egohod
from egohod.models import is_random_weights, random_weights_seed


def _max_diff(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    return max(float((sa[k].float() - sb[k].float()).abs().max()) for k in sa)


def test_load_encoder_is_a_function_of_name_and_seed():
    torch.manual_seed(7)
    a = egohod.load_encoder("egovideo_tiny")
    torch.manual_seed(8)  # a different global state must not change the weights
    b = egohod.load_encoder("egovideo_tiny")
    c = egohod.load_encoder("egovideo_tiny", seed=1)
    assert _max_diff(a, b) == 0.0
    assert _max_diff(a, c) > 0.1
    assert (a.weights, c.weights) == ("random:seed=0", "random:seed=1")
    assert is_random_weights(c.weights) and random_weights_seed(c.weights) == 1
    assert _max_diff(c, egohod.load_encoder("egovideo_tiny", seed=1)) == 0.0


def test_global_rng_is_untouched():
    torch.manual_seed(3)
    state = torch.get_rng_state()
    egohod.load_encoder("egovideo_tiny", seed=5)
    egohod.create_model("egovideo_tiny", seed=5)
    assert torch.equal(torch.get_rng_state(), state)


def test_create_model_seed_and_the_encoder_built_from_it_agree():
    m1, m2 = egohod.create_model("egovideo_tiny", seed=4), egohod.create_model("egovideo_tiny", seed=4)
    assert m1.weights == "random:seed=4" and _max_diff(m1, m2) == 0.0
    assert _max_diff(m1, egohod.create_model("egovideo_tiny", seed=0)) > 0.1
    # the frozen encoder is the vision tower of the same seeded model (no adapter without a checkpoint)
    enc = egohod.load_encoder("egovideo_tiny", seed=4)
    tower = egohod.create_model("egovideo_tiny", seed=4, adapter=False).visual
    assert _max_diff(enc.visual, tower) == 0.0


def test_checkpoint_weights_are_not_labelled_random(tmp_path):
    from safetensors.torch import save_file

    src = egohod.load_encoder("egovideo_tiny", seed=2)
    path = tmp_path / "enc.safetensors"
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(path))
    enc = egohod.load_encoder("egovideo_tiny", checkpoint=path, seed=9)
    assert not is_random_weights(enc.weights) and len(enc.weights) == 64
    assert _max_diff(enc, src) == 0.0


def test_seed_must_be_an_int():
    with pytest.raises(TypeError, match="seed must be an int"):
        egohod.load_encoder("egovideo_tiny", seed="1")
