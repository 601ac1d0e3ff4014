"""The observation-encoder kinds (``state``, ``vision``) live on the one Registry; the robot side
asks the class what an encoder reads instead of comparing names with "state"."""
import pytest

from robot.obs_encoders import (OBS_ENCODERS, StateObsEncoder, VisionObsEncoder, build_obs_encoder,
                                obs_encoder_class)


def test_kinds_are_registered_and_resolved_from_encoder_names():
    assert OBS_ENCODERS.list() == ["state", "vision"]
    assert obs_encoder_class("state") is StateObsEncoder and not StateObsEncoder.needs_rgb
    for name in ("egovideo_tiny", "r3m", "vision"):
        assert obs_encoder_class(name) is VisionObsEncoder and VisionObsEncoder.needs_rgb


def test_build_goes_through_the_kind():
    enc = build_obs_encoder("state", None, 2, object_state_dim=5, state_index=[0, 3])
    assert isinstance(enc, StateObsEncoder) and enc.info.embed_dim == 4 and enc.obs_key("left") == "object_state"
    enc = build_obs_encoder("egovideo_tiny", None, 1, seed=2)
    assert isinstance(enc, VisionObsEncoder) and enc.info.weights == "random:seed=2" and enc.obs_key("left") == "rgb_left"
    with pytest.raises(ValueError, match=r"unknown encoder 'vision'; choose one of: .*egovideo_tiny.*, state$"):
        build_obs_encoder("vision", None, 1)


def test_run_keeps_the_task_state_entries_only_for_encoders_that_read_state():
    from omegaconf import OmegaConf

    from robot.run_bc import state_index

    def cfg(name, object_state="task"):
        return OmegaConf.create({"encoder": {"name": name, "object_state": object_state},
                                 "env": {"name": "kitchen", "task": "microwave"}})

    kept = state_index(cfg("state"))
    assert kept and all(isinstance(i, int) for i in kept)
    assert state_index(cfg("state", "all")) is None and state_index(cfg("egovideo_tiny")) is None
