"""pretrain/eval_retrieval.py: held-out retrieval of a checkpoint, the same split as training."""

from egohod.data.synthetic import SyntheticConfig, make_corpus


def _cfg(corpus, checkpoint=None):
    from pretrain.config import PretrainConfig, validate

    c = PretrainConfig()
    c.data.csv, c.data.video_root = str(corpus / "metadata.csv"), str(corpus / "videos")
    c.data.resize_short, c.data.batch_size, c.data.num_workers, c.data.pin_memory = 40, 4, 0, False
    c.data.slow_frames, c.data.holdout_fraction = 8, 0.5
    c.model.name, c.model.checkpoint = "egovideo_tiny", checkpoint
    c.train.device = "cpu"
    c.val.batch_size = 4
    validate(c)
    return c


def test_random_weights_are_seeded_and_a_checkpoint_changes_the_scores(tmp_path):
    from egohod.models.checkpoint_io import write_checkpoint
    from pretrain.data import load_records
    from pretrain.eval_retrieval import evaluate

    corpus = tmp_path / "c"
    make_corpus(SyntheticConfig(out=str(corpus), videos=4, seconds=6, fps=4, height=48, width=64), progress=False)
    cfg = _cfg(corpus)
    a, b = evaluate(cfg), evaluate(cfg)
    assert a["random_weights"] and a == b  # a function of (name, seed)
    _, held = load_records(cfg.data, cfg.train.seed)
    assert a["clips"] == len(held) > 0 and a["dual"]["num_clips"] == len(held)
    for path in ("dual", "fast"):
        assert set(a[path]) >= {"t2v_r1", "t2v_r5", "v2t_r1", "t2v_map", "v2t_map"}
    # a different model (another seed's weights written as a pretraining checkpoint) scores differently
    import egohod

    m = egohod.create_model("egovideo_tiny", adapter=True, seed=7)
    ck = tmp_path / "model.pt"
    write_checkpoint(ck, m.state_dict(), {"model_name": "egovideo_tiny"})
    c = evaluate(_cfg(corpus, str(ck)))
    assert not c["random_weights"] and c["checkpoint"] == str(ck)
    assert c["dual"] != a["dual"] or c["fast"] != a["fast"]
