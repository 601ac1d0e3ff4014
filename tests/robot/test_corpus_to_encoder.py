"""The two halves end to end on a few clips (issue 11): kitchen corpus -> HOD (precomputed
detections, template narrator) -> dual-path pretraining with the normal entry point ->
``load_encoder`` on the checkpoint it wrote."""
import ast
import csv

import pytest
import torch
from omegaconf import OmegaConf


@pytest.mark.render
def test_corpus_hod_pretrain_load_encoder(tmp_path):
    import egohod
    from egohod.hod.cli import main as hod_main
    from pretrain.config import PretrainConfig, validate
    from pretrain.distributed import DistInfo
    from pretrain.train import run
    from robot.corpus_gen import MakeCorpusConfig, make_corpus

    corpus = tmp_path / "corpus"
    cfg = OmegaConf.structured(MakeCorpusConfig)
    cfg.merge_with({"out": str(corpus), "episodes": 1, "tasks": ["microwave", "light_switch"],
                    "cameras": ["ego"], "image_size": 32, "progress": False})
    make_corpus(cfg)
    hod = tmp_path / "hod"
    assert hod_main(["run", f"clips={corpus / 'clips.csv'}", f"videos={corpus / 'videos'}", f"out={hod}",
                     "detector=precomputed", "detector.format=100doh", f"detector.root={corpus / 'detections'}",
                     "progress=false"]) == 0
    assert hod_main(["merge", f"out={hod}"]) == 0
    rows = list(csv.DictReader(open(hod / "hod.csv")))
    assert len(rows) == 6  # 2 episodes x 1 camera x 3 clips, none failed
    texts = [ast.literal_eval(r["text"])[0] for r in rows]
    assert all(t.startswith("#C C's right hand") for t in texts)  # the fine-grained rewrite, not the coarse one
    assert any("microwave" in t for t in texts) and any("light switch" in t for t in texts)

    c = PretrainConfig()
    c.data.csv, c.data.video_root = str(hod / "hod.csv"), str(corpus / "videos")
    c.data.resize_short, c.data.batch_size, c.data.num_workers, c.data.pin_memory = 32, 3, 0, False
    c.data.slow_frames, c.data.flip = 8, False
    c.model.name = "egovideo_tiny"
    c.train.out, c.train.device, c.train.max_steps, c.train.save_every_steps = str(tmp_path / "run"), "cpu", 2, 2
    c.log.wandb = c.log.progress = False
    validate(c)
    run(c, OmegaConf.to_container(OmegaConf.structured(c)), DistInfo())
    ckpt = tmp_path / "run" / "checkpoints" / "last" / "model.pt"
    enc = egohod.load_encoder(checkpoint=str(ckpt))  # the file says which model it holds
    assert enc.weights != "random:seed=0" and not str(enc.weights).startswith("random")
    x = torch.randint(0, 256, (2, 32, 32, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    z = enc(x)
    assert z.shape == (2, enc.embed_dim) and torch.isfinite(z).all()
    assert not torch.allclose(z, egohod.load_encoder("egovideo_tiny")(x))  # the trained weights were loaded
