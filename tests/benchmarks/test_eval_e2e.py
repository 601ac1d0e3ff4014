"""End-to-end ``egohod eval`` / ``egohod extract`` on fixture datasets with egovideo_tiny (random weights).

EGTEA, EgoMCQ and the dual path are checked value for value against a reference computed in this
file from the same model (same name and seed): frames decoded with PyAV (EGTEA) or read by the
frame-rule functions tested below (EgoMCQ), resize short side + centre crop + CLIP mean/std in
plain torch, ``encode_video`` / ``encode_video_dual`` / ``encode_text``, then scores and metrics
in plain numpy.
"""
import functools
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from egohod.benchmarks import frames as fr
from egohod.benchmarks.cli import eval_main, extract_main

from . import fixtures


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    return {"ek100": fixtures.make_ek100(root / "ek100"), "egtea": fixtures.make_egtea(root / "egtea"),
            "egomcq": fixtures.make_egomcq(root / "egomcq")}


def _run(benchmark, data, out, *extra):
    rc = eval_main([benchmark, "encoder=egovideo_tiny", f"data={data}", f"out={out}", "device=cpu", "batch=3",
                    *extra])
    assert rc == 0
    record = json.loads((out / f"{benchmark}.json").read_text())
    table = (out / f"{benchmark}.md").read_text()
    assert table.startswith("| benchmark | encoder |") and benchmark in table
    assert record["benchmark"] == benchmark and record["encoder"] == "egovideo_tiny"
    assert record["weights"].startswith("random") and record["config"]["data"] == str(data)
    return record


CLIP_MEAN_DOC = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
CLIP_STD_DOC = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)


def _decode_all(path):
    import av

    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def _plain_clip(frames, size=32):
    """uint8 ``[T, H, W, 3]`` -> ``[1, 3, T, S, S]``: short side to ``size`` (bicubic, antialiased),
    centre crop, CLIP mean/std on 0..1 pixels."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255.0
    h, w = x.shape[-2:]
    nh, nw = (size, int(size * w / h)) if h <= w else (int(size * h / w), size)
    x = F.interpolate(x, size=(nh, nw), mode="bicubic", align_corners=False, antialias=True)
    top, left = int(round((nh - size) / 2)), int(round((nw - size) / 2))
    x = (x[..., top: top + size, left: left + size] - CLIP_MEAN_DOC) / CLIP_STD_DOC
    return x.permute(1, 0, 2, 3)[None]


def _unit(z):
    z = z.detach().float().numpy().astype(np.float64)
    return z / np.linalg.norm(z, axis=-1, keepdims=True)


def _reference_model(data, benchmark, *extra):
    from egohod.benchmarks.config import load_eval_config
    from egohod.benchmarks.protocols import ZeroShotModel

    cfg = load_eval_config(benchmark, [f"data={data}", "encoder=egovideo_tiny", "device=cpu", *extra])
    return ZeroShotModel(cfg).model  # the same (name, seed) as the eval run: the same weights


def _embed_texts(model, texts):
    import egohod

    with torch.no_grad():
        return _unit(model.encode_text(egohod.get_tokenizer("egovideo_tiny")(list(texts))))


def _egtea_reference(data, model, k, slow=None):
    """(scores [clips, classes], labels) of EGTEA test_split1 computed without the protocol code."""
    classes = {}
    for line in (data / "action_idx.txt").read_text().splitlines():
        name, idx = line.rsplit(" ", 1)
        classes[int(idx)] = name.replace("_", " ").lower()
    rows = [line.split() for line in (data / "test_split1.txt").read_text().splitlines()]
    videos = []
    for clip, _action, *_ in rows:
        frames = _decode_all(data / "cropped_clips" / "-".join(clip.split("-")[:3]) / f"{clip}.mp4")
        pick = lambda n: frames[((np.arange(n) + 0.5) * len(frames) / n).astype(int)]  # segment midpoints  # noqa: E731
        with torch.no_grad():
            if slow is None:
                z = model.encode_video(_plain_clip(pick(k)))
            else:
                z = model.encode_video_dual(_plain_clip(pick(k)), _plain_clip(pick(slow)))
        videos.append(_unit(z)[0])
    text = _embed_texts(model, [classes[i] for i in sorted(classes)])
    return np.stack(videos) @ text.T, np.array([int(r[1]) - 1 for r in rows])


def _classification_reference(scores, labels):
    pred = scores.argmax(axis=1)
    rank = (scores > scores[np.arange(len(labels)), labels][:, None]).sum(axis=1)
    per_class = [np.mean(pred[labels == c] == c) for c in np.unique(labels)]
    return {"top1": 100 * np.mean(pred == labels), "top5": 100 * np.mean(rank < 5),
            "mean_class_acc": 100 * np.mean(per_class)}


@pytest.fixture()
def spy(monkeypatch):
    """The arrays each protocol hands to its scorer (the real scorer still runs)."""
    from egohod.benchmarks import protocols

    seen = {}
    for name in ("classification_scores", "egomcq_scores"):
        real = getattr(protocols, name)

        def wrapper(*args, _real=real, _name=name, **kw):
            seen[_name] = [np.asarray(a) for a in args]
            return _real(*args, **kw)

        monkeypatch.setattr(protocols, name, wrapper)
    return seen


def _in_range(metrics, keys):
    assert set(metrics) == set(keys), sorted(metrics)
    for k in keys:
        assert metrics[k] is not None and 0.0 <= metrics[k] <= 100.0, (k, metrics[k])


def test_eval_ek100_mir(datasets, tmp_path, capsys):
    rec = _run("ek100-mir", datasets["ek100"], tmp_path)
    _in_range(rec["metrics"], ["map_v2t", "map_t2v", "map_avg", "ndcg_v2t", "ndcg_t2v", "ndcg_avg"])
    assert rec["num_clips"] == 6 and rec["num_captions"] == 4
    assert rec["config"]["num_frames"] == 4 and rec["config"]["mir_text"] == "narration"
    assert "map_avg" in capsys.readouterr().out
    # the sentence file holds the same strings for these ids -> identical scores
    rec2 = _run("ek100-mir", datasets["ek100"], tmp_path / "s", "mir_text=sentence")
    assert rec2["config"]["mir_text"] == "sentence"
    assert rec2["metrics"] == pytest.approx(rec["metrics"], abs=1e-9)


def test_mir_caption_texts_narration_vs_sentence(datasets, monkeypatch):
    from egohod.benchmarks import protocols
    from egohod.benchmarks.config import load_eval_config

    seen = {}

    def fake_texts(self, texts, desc="text"):
        seen[desc] = list(texts)
        return np.eye(len(texts), 4, dtype=np.float32)

    def fake_clips(self, read_fns, desc="clips"):
        return np.eye(len(read_fns), 4, dtype=np.float32)

    monkeypatch.setattr(protocols.ZeroShotModel, "embed_texts", fake_texts)
    monkeypatch.setattr(protocols.ZeroShotModel, "embed_clips", fake_clips)
    sent = datasets["ek100"] / "epic-kitchens-100-annotations" / "retrieval_annotations" / "EPIC_100_retrieval_test_sentence.csv"
    original = sent.read_text()
    try:
        sent.write_text(original.replace("wash plate", "rinse the plate"))
        for mode, third in (("narration", "wash plate"), ("sentence", "rinse the plate")):
            cfg = load_eval_config("ek100-mir", [f"data={datasets['ek100']}", "encoder=egovideo_tiny", "device=cpu",
                                                 f"mir_text={mode}"])
            metrics, info = protocols.run_ek100_mir(cfg, protocols.ZeroShotModel(cfg))
            assert seen["EK-100 captions"] == ["open fridge", "take knife", third, "cut onion"]
            assert info == {"num_clips": 6, "num_captions": 4}
    finally:
        sent.write_text(original)
    # identity embeddings: clip i matches caption i only -> rows 0..3 rank their caption first
    assert metrics["map_v2t"] > 50


def test_class_embedding_is_renormalised_mean_of_normalised_texts():
    from egohod.benchmarks.protocols import class_embeddings

    vecs = {"#C C open fridge": [3.0, 0.0], "open fridge": [0.0, 1.0], "take knife": [1.0, 1.0],
            "#C C take knife": [1.0, -1.0]}

    class Fake:
        def embed_texts(self, texts, desc=""):
            e = np.array([vecs[t] for t in texts])
            return e / np.linalg.norm(e, axis=1, keepdims=True)

    emb = class_embeddings(Fake(), [["open fridge"], ["take knife"]], ["{}", "#C C {}"])
    np.testing.assert_allclose(emb[0], np.array([1.0, 1.0]) / np.sqrt(2))  # mean of (0,1) and (1,0)
    np.testing.assert_allclose(emb[1], [1.0, 0.0])  # mean of (1,1)/sqrt2 and (1,-1)/sqrt2


def test_eval_ek100_cls(datasets, tmp_path):
    rec = _run("ek100-cls", datasets["ek100"], tmp_path, "num_frames=4", "templates=['{}','#C C {}']")
    _in_range(rec["metrics"], ["top1", "top5", "mean_class_acc"])
    # classes = verb:noun pairs of train + validation: 3:12, 0:4, 2:7, 0:4, 10:30, 4:12 -> 5 unique
    assert rec["num_classes"] == 5 and rec["num_clips"] == 6
    assert rec["metrics"]["top5"] == 100.0  # 5 classes: every label is in the top 5


def test_eval_egtea_matches_an_independent_computation(datasets, tmp_path, spy):
    rec = _run("egtea", datasets["egtea"], tmp_path, "num_frames=4")
    assert rec["num_clips"] == 4 and rec["num_classes"] == 3
    scores, labels = spy["classification_scores"]
    want_scores, want_labels = _egtea_reference(datasets["egtea"], _reference_model(datasets["egtea"], "egtea"), 4)
    np.testing.assert_array_equal(labels, want_labels)
    assert want_labels.tolist() == [0, 1, 2, 0]  # action ids 1, 2, 3, 1 of the fixture
    np.testing.assert_allclose(scores, want_scores, atol=1e-5)
    assert rec["metrics"] == pytest.approx(_classification_reference(want_scores, want_labels), abs=1e-9)


def test_eval_egomcq_matches_an_independent_computation(datasets, tmp_path, spy):
    data = datasets["egomcq"]
    rec = _run("egomcq", data, tmp_path, "num_frames=4", "chunk_seconds=2")
    assert rec["num_inter"] == 1 and rec["num_intra"] == 1
    scores, answers, types = spy["egomcq_scores"]
    model = _reference_model(data, "egomcq", "num_frames=4")
    questions = json.loads((data / "egomcq.json").read_text())
    want = np.zeros((2, 5))
    for qi, key in enumerate(["0", "1"]):
        q = questions[key]
        text = _embed_texts(model, [q["query"]["clip_text"]])[0]
        for c in range(5):
            ch = q["choices"][str(c)]
            if ch["video_uid"] == "vchunk":
                frames = fr.read_chunked_window(data / "videos", "vchunk", ch["clip_start"], ch["clip_end"], 4,
                                                chunk_seconds=2)
            else:
                frames = fr.read_time_window(data / "videos" / "vplain.mp4", ch["clip_start"], ch["clip_end"], 4)
            with torch.no_grad():
                want[qi, c] = _unit(model.encode_video(_plain_clip(frames)))[0] @ text
    np.testing.assert_allclose(scores, want, atol=1e-5)
    assert answers.tolist() == [1, 3] and types.tolist() == [1, 2]
    correct = want.argmax(axis=1) == np.array([1, 3])
    assert rec["metrics"] == {"inter": 100.0 * correct[0], "intra": 100.0 * correct[1]}


def test_eval_is_independent_of_batching_and_workers(datasets, tmp_path):
    # batch 1 in-process vs batch 3 with 2 decoding workers; same seed -> same random weights
    from egohod.benchmarks.config import load_eval_config
    from egohod.benchmarks.protocols import ZeroShotModel, _egtea_clip

    clips = sorted((datasets["egtea"] / "cropped_clips").rglob("*.mp4"))
    readers = [functools.partial(_egtea_clip, p) for p in clips]
    embs = []
    for extra in (["batch=1"], ["batch=3", "workers=2"]):
        cfg = load_eval_config("egtea", [f"data={datasets['egtea']}", "encoder=egovideo_tiny", "device=cpu",
                                         "num_frames=4", *extra])
        embs.append(ZeroShotModel(cfg).embed_clips(readers))
    assert embs[0].shape == (4, 32)
    np.testing.assert_allclose(embs[0], embs[1], atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(embs[0], axis=1), 1.0, atol=1e-5)
    assert not np.allclose(embs[0][0], embs[0][1])


def test_eval_dual_path_matches_an_independent_computation_and_differs_from_single(datasets, tmp_path, spy):
    data = datasets["egtea"]
    rec = _run("egtea", data, tmp_path, "num_frames=4", "dual=true", "slow_frames=8")
    assert rec["config"]["dual"] is True and rec["config"]["slow_frames"] == 8
    dual_scores, labels = spy["classification_scores"]
    model = _reference_model(data, "egtea")
    want_dual, want_labels = _egtea_reference(data, model, 4, slow=8)
    np.testing.assert_allclose(dual_scores, want_dual, atol=1e-5)
    assert rec["metrics"] == pytest.approx(_classification_reference(want_dual, want_labels), abs=1e-9)
    # the dual path is another embedding than the backbone alone
    single, _ = _egtea_reference(data, model, 4)
    assert np.abs(dual_scores - single).max() > 1e-2


def test_eval_limit_and_missing_video_message(datasets, tmp_path, capsys):
    rec = _run("egtea", datasets["egtea"], tmp_path, "num_frames=2", "limit=2")
    assert rec["num_clips"] == 2 and rec["config"]["limit"] == 2
    capsys.readouterr()
    assert eval_main(["egtea", "encoder=egovideo_tiny", f"data={datasets['egtea']}", "videos=nowhere",
                      f"out={tmp_path / 'x'}", "device=cpu"]) == 2
    err = capsys.readouterr().err
    assert "video folder" in err and "nowhere does not exist" in err
    (datasets["egtea"] / "partial" / "OP01-R01-PastaSalad").mkdir(parents=True, exist_ok=True)
    assert eval_main(["egtea", "encoder=egovideo_tiny", f"data={datasets['egtea']}", "videos=partial",
                      f"out={tmp_path / 'x'}", "device=cpu"]) == 2
    err = capsys.readouterr().err
    assert "video for EGTEA clip OP01-R01-PastaSalad-1002316" in err and "not found; tried" in err
    assert "partial/OP01-R01-PastaSalad/OP01-R01-PastaSalad-1002316" in err
    assert not (tmp_path / "x").exists()  # nothing written for a failed run


def test_eval_missing_annotation_and_bad_key(datasets, tmp_path, capsys):
    assert eval_main(["egtea", "encoder=egovideo_tiny", f"data={tmp_path}", f"out={tmp_path}", "device=cpu"]) == 2
    assert "action_idx.txt not found" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="Key 'bacth' not in 'EvalConfig'"):
        eval_main(["egtea", f"data={tmp_path}", "bacth=2"])
    with pytest.raises(SystemExit, match="unknown benchmark 'ek-mir'"):
        eval_main(["ek-mir", f"data={tmp_path}"])


def test_extract_writes_features_timestamps_and_resumes(tmp_path, capsys):
    vids = tmp_path / "videos"
    fixtures.make_video(vids / "a.mp4", 3.0, seed=1)
    fixtures.make_video(vids / "sub" / "b.mp4", 1.9, seed=2)
    out = tmp_path / "feats"
    args = ["encoder=egovideo_tiny", f"videos={vids}", f"out={out}", "stride=1.0", "device=cpu", "batch=2"]
    assert extract_main(args) == 0
    fa, ta = np.load(out / "a.npy"), np.load(out / "a.timestamps.npy")
    fb, tb = np.load(out / "sub" / "b.npy"), np.load(out / "sub" / "b.timestamps.npy")
    assert fa.shape == (3, 32) and fa.dtype == np.float32 and np.isfinite(fa).all()
    assert np.allclose(ta, [[0, 1], [1, 2], [2, 3]])
    assert fb.shape == (2, 32) and np.allclose(tb, [[0, 1], [1, 1.9]])
    assert not np.allclose(fa[0], fa[1])  # different windows -> different features
    index = json.loads((out / "index.json").read_text())
    assert index["videos"]["sub/b"]["num_windows"] == 2 and index["embed_dim"] == 32
    mtime = (out / "a.npy").stat().st_mtime_ns
    out2 = tmp_path / "feats2"  # batch 1 with 2 decoding workers: same features
    assert extract_main(args[:2] + [f"out={out2}", "stride=1.0", "device=cpu", "batch=1", "workers=2"]) == 0
    np.testing.assert_allclose(np.load(out2 / "a.npy"), fa, atol=1e-5)
    assert extract_main(args) == 0
    assert "2 already done" in capsys.readouterr().out
    assert (out / "a.npy").stat().st_mtime_ns == mtime


def test_frame_id_rules_match_egohod():
    # EgoHOD get_frame_ids(0, 30, 4): seg = 29/4 = 7.25 -> bounds 0,7,14(14.5 -> 14),22(21.75),29
    assert fr.egohod_frame_ids(0, 30, 4).tolist() == [3, 10, 18, 25]
    # EGTEA: midpoints of linspace(0, 30, 5) = 3.75, 11.25, 18.75, 26.25 -> truncated
    assert fr.egtea_frame_ids(0, 30, 4).tolist() == [3, 11, 18, 26]
    # short window: at least n frames long, clamped to the video
    ids = fr.time_window_frame_ids(0.0, 0.1, 10.0, 50, 4)
    assert ids.min() >= 0 and ids.max() < 50 and len(ids) == 4
    assert not math.isnan(float(ids.mean()))
