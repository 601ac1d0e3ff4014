"""Fine-tuning (pretrain/finetune): the three tasks train egovideo_tiny on generated clips in the
official formats, evaluate through the benchmark scorers, resume exactly and save checkpoints
that load_encoder reads; bad data is refused before training; the MIR loss and the layer-wise
lr decay match hand-computed values."""
import importlib.util
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("_bench_fixtures_ft", ROOT / "tests" / "benchmarks" / "fixtures.py")
fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fixtures)

FAST = ["encoder=egovideo_tiny", "train.device=cpu", "data.num_workers=0", "data.num_frames=4",
        "data.resize_short=40", "data.flip=false", "log.wandb=false", "log.progress=false",
        "train.log_every_steps=1", "optim.lr=2e-3", "optim.warmup_epochs=0", "model.head_dropout=0"]


def make_cfg(task: str, data: Path, out: Path, *overrides: str):
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from pretrain.finetune.config import validate
    from pretrain.finetune.train import CONFIG_DIR, translate_argv

    args = translate_argv([task, f"data={data}", f"out={out}", *FAST, *overrides])
    with initialize_config_dir(str(CONFIG_DIR), version_base=None):
        d = compose(args[1], args[2:])
    cfg = OmegaConf.to_object(d)
    validate(cfg)
    return cfg, OmegaConf.to_container(d, resolve=True)


def run_task(task, data, out, *overrides):
    from pretrain.distributed import DistInfo
    from pretrain.finetune.train import run

    cfg, cfg_dict = make_cfg(task, data, out, *overrides)
    return run(cfg, cfg_dict, DistInfo())


def losses(out: Path) -> list[float]:
    from pretrain.runlog import read_metrics

    return [r["loss"] for _, r in sorted(read_metrics(out / "metrics.jsonl").items())]


def val(out: Path) -> dict:
    from pretrain.runlog import read_metrics

    return read_metrics(out / "metrics.jsonl", "val")


@pytest.fixture(scope="module")
def egtea(tmp_path_factory):
    root = fixtures.make_egtea(tmp_path_factory.mktemp("egtea"))
    (root / "train_split1.txt").write_text("".join(f"{c} {a} 1 1\n" for c, a in fixtures.EGTEA_CLIPS))
    return root


@pytest.fixture(scope="module")
def ek100(tmp_path_factory):
    root = fixtures.make_ek100(tmp_path_factory.mktemp("ek"))
    fixtures.make_video(root / "videos" / "P03_01.mp4", 2.5, seed=3)  # the train CSV's third video
    ann = root / "epic-kitchens-100-annotations" / "retrieval_annotations"
    # MIR train files: the fixture's test clips, sentences and relevancy, under the train names
    shutil.copy(ann / "EPIC_100_retrieval_test.csv", ann / "EPIC_100_retrieval_train.csv")
    shutil.copy(ann / "EPIC_100_retrieval_test_sentence.csv", ann / "EPIC_100_retrieval_train_sentence.csv")
    shutil.copy(ann / "relevancy" / "caption_relevancy_EPIC_100_retrieval_test.pkl",
                ann / "relevancy" / "caption_relevancy_EPIC_100_retrieval_train.pkl")
    return root


# ----------------------------------------------------------------------------- losses, optimizer


def test_mir_loss_matches_hand_computed_value():
    from pretrain.finetune.losses import max_margin_ranking_loss

    video = 2.0 * torch.eye(3)  # normalised inside: S[i, j] = text_i[j]
    text = torch.tensor([[1.0, 0, 0], [0.6, 0.8, 0], [0, 0.6, 0.8]])
    # S = [[1, 0, 0], [.6, .8, 0], [0, .6, .8]], margin .3: the hinges above zero are
    # text 1 vs video 0 (.3 - (.8 - .6)), text 2 vs video 1 (same), video 1 vs text 2 (same): 3 x .1 over 12 terms
    assert float(max_margin_ranking_loss(video, text, margin=0.3)) == pytest.approx(0.3 / 12, abs=1e-6)
    # adaptive margins .3 x (1, .5, 2): only text 2 vs video 1 is left, .6 - .2 = .4
    w = torch.tensor([1.0, 0.5, 2.0])
    assert float(max_margin_ranking_loss(video, text, margin=0.3, weight=w)) == pytest.approx(0.4 / 12, abs=1e-6)


def test_soft_cross_entropy_smoothing_and_mixup_targets():
    from pretrain.finetune.losses import mixed_targets, soft_cross_entropy

    logits = torch.tensor([[2.0, 0.0, -1.0]])
    logp = torch.log_softmax(logits, -1)[0]
    expect = -((0.9 + 0.1 / 3) * logp[0] + (0.1 / 3) * (logp[1] + logp[2]))
    assert float(soft_cross_entropy(logits, torch.tensor([0]), 0.1)) == pytest.approx(float(expect), rel=1e-6)
    t = mixed_targets(torch.tensor([0, 2]), 3, 0.7, torch.tensor([1, 0]))
    assert torch.allclose(t, torch.tensor([[0.7, 0, 0.3], [0.3, 0, 0.7]]))


def test_layer_decay_scales_lr_per_block():
    import egohod
    from pretrain.finetune.tasks import FinetuneModel, param_groups
    from pretrain.optim import set_lr

    model = FinetuneModel(egohod.create_model("egovideo_tiny"), (5,))  # 2 vision blocks
    groups = param_groups(model, 0.05, layer_decay=0.5)
    opt = torch.optim.AdamW(groups, lr=1.0)
    set_lr(opt, 1e-3)
    lr_of = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    named = dict(model.named_parameters())
    assert lr_of[id(named["encoder.visual.conv1.weight"])] == pytest.approx(1e-3 * 0.5 ** 3)
    assert lr_of[id(named["encoder.visual.transformer.resblocks.0.attn.in_proj_weight"])] == pytest.approx(1e-3 * 0.25)
    assert lr_of[id(named["encoder.visual.transformer.resblocks.1.attn.in_proj_weight"])] == pytest.approx(1e-3 * 0.5)
    assert lr_of[id(named["heads.0.weight"])] == pytest.approx(1e-3)
    trainable = {n for n, p in named.items() if p.requires_grad}
    assert not any(n.startswith("encoder.textual.") or ".adapter." in n for n in trainable)
    wd = {id(p): g["weight_decay"] for g in opt.param_groups for p in g["params"]}
    assert wd[id(named["heads.0.bias"])] == 0.0 and wd[id(named["heads.0.weight"])] == 0.05


# ----------------------------------------------------------------------------- tasks end to end


def test_egtea_trains_evaluates_and_resumes_exactly(egtea, tmp_path, monkeypatch):
    import egohod
    import pretrain.finetune.train as ft
    from egohod.models.checkpoint_io import read_checkpoint_with_meta
    from pretrain.train import _STOP_SIGNAL

    common = ("data.batch_size=2", "train.epochs=3", "eval.every_epochs=2")
    a = tmp_path / "a"
    run_task("egtea", egtea, a, *common)
    la = losses(a)
    assert len(la) == 6 and np.mean(la[-2:]) < np.mean(la[:2]), la
    va = val(a)
    assert sorted(va) == [4, 6] and set(va[6]) >= {"top1", "top5", "mean_class_acc"}  # every 2 epochs + the last

    # B: stopped (as by SIGTERM) after step 3, then resumed: the same weights, losses and scores as A
    b = tmp_path / "b"
    real, calls = ft.train_step, []

    def stop_after_three(*args, **kw):
        calls.append(1)
        if len(calls) == 3:
            _STOP_SIGNAL.append("test")
        return real(*args, **kw)

    monkeypatch.setattr(ft, "train_step", stop_after_three)
    with pytest.raises(SystemExit, match="stopped at step 3"):
        run_task("egtea", egtea, b, *common)
    _STOP_SIGNAL.clear()
    monkeypatch.setattr(ft, "train_step", real)
    run_task("egtea", egtea, b, *common, "train.resume=true")
    assert losses(b) == la
    assert {s: v["top1"] for s, v in val(b).items()} == {s: v["top1"] for s, v in va.items()}
    sa, ma = read_checkpoint_with_meta(a / "checkpoints" / "last" / "model.pt")
    sb, mb = read_checkpoint_with_meta(b / "checkpoints" / "last" / "model.pt")
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert all(torch.equal(ma["finetune"]["heads"][k], mb["finetune"]["heads"][k]) for k in ma["finetune"]["heads"])

    # the checkpoints load in load_encoder with the fine-tuned weights (name read from the file)
    enc = egohod.load_encoder(checkpoint=a / "checkpoints" / "last" / "model.pt")
    own = {k: v for k, v in enc.state_dict().items() if k.endswith("conv1.weight")}
    assert own and all(torch.equal(v, sa["visual.conv1.weight"]) for v in own.values())
    assert enc(torch.zeros(1, 4, 32, 32, 3, dtype=torch.uint8)).shape == (1, enc.embed_dim)
    best = a / "checkpoints" / "best"
    assert (best / "model.pt").is_file() and egohod.load_encoder(checkpoint=best / "model.pt") is not None
    full = egohod.create_model(checkpoint=best / "model.pt")  # what egohod eval builds
    assert full.name == "egovideo_tiny" and full.visual.temporal_embedding.shape[0] == 4


def test_egtea_test_views_clips_by_crops(egtea):
    from egohod.models import get_input_spec
    from pretrain.finetune.data import EvalClips, load_task_data

    data = load_task_data("egtea", str(egtea), "cropped_clips")
    ds = EvalClips(data.test, get_input_spec("egovideo_tiny"), 4, num_clips=2, num_crops=3)
    item = ds[0]
    assert item["video"].shape == (6, 3, 4, 32, 32)
    assert not torch.equal(item["video"][0], item["video"][2])  # left and right crops differ


def test_ek100_cls_trains_and_scores_actions(ek100, tmp_path):
    out = tmp_path / "cls"
    run_task("ek100-cls", ek100, out, "data.batch_size=5", "train.epochs=6", "loss.mixup=0", "loss.cutmix=0",
             "optim.layer_decay=1.0", "eval.every_epochs=6")
    ls = losses(out)
    assert len(ls) == 6 and ls[-1] < ls[0], ls
    v = val(out)[6]
    assert set(v) >= {"verb_top1", "noun_top1", "action_top1", "action_top5"}
    assert 0 <= v["action_top1"] <= v["action_top5"] <= 100


def test_ek100_cls_with_mixup_and_cutmix_runs_steps(ek100, tmp_path):
    out = tmp_path / "mix"
    run_task("ek100-cls", ek100, out, "data.batch_size=5", "train.epochs=2", "eval.every_epochs=0")
    ls = losses(out)
    assert len(ls) == 2 and all(np.isfinite(ls))


def test_ek100_mir_trains_and_evaluates_with_the_protocol(ek100, tmp_path):
    out = tmp_path / "mir"
    run_task("ek100-mir", ek100, out, "data.batch_size=6", "train.epochs=4", "eval.every_epochs=4",
             "data.videos=videos")
    ls = losses(out)
    assert len(ls) == 4 and ls[-1] < ls[0], ls
    v = val(out)[4]
    assert {"ek100_mir_map_avg", "ek100_mir_ndcg_avg"} <= set(v) and 0 <= v["ek100_mir_map_avg"] <= 100
    assert (out / "checkpoints" / "best" / "best.json").is_file()
    assert not list((out / "checkpoints").glob(".eval_model*"))


# ----------------------------------------------------------------------------- bad data, command line


def test_missing_video_is_an_error_before_training(tmp_path):
    from egohod.benchmarks.readers import BenchmarkDataError

    root = fixtures.make_ek100(tmp_path / "ek")  # its train CSV names P03_01, which has no video
    with pytest.raises(BenchmarkDataError, match=r"(?s)EPIC_100_train.csv.*video.*not found.*P03_01"):
        run_task("ek100-cls", root, tmp_path / "out", "data.batch_size=2")
    assert not (tmp_path / "out" / "checkpoints").exists()


def test_bad_annotations_are_errors_naming_the_file(egtea, tmp_path):
    from egohod.benchmarks.readers import BenchmarkDataError

    root = tmp_path / "eg"
    shutil.copytree(egtea, root)
    (root / "train_split1.txt").write_text(f"{fixtures.EGTEA_CLIPS[0][0]} 9 1 1\n")  # 3 classes only
    with pytest.raises(BenchmarkDataError, match=r"train_split1.txt, line 1: action id 9 outside 1..3"):
        run_task("egtea", root, tmp_path / "o1", "data.batch_size=1")
    (root / "train_split1.txt").unlink()
    with pytest.raises(BenchmarkDataError, match="train_split1.txt not found"):
        run_task("egtea", root, tmp_path / "o2", "data.batch_size=1")


def test_mir_clip_without_positive_caption_is_an_error(ek100, tmp_path):
    from egohod.benchmarks.readers import BenchmarkDataError

    root = tmp_path / "ek"
    shutil.copytree(ek100, root)
    rel_path = root / "epic-kitchens-100-annotations/retrieval_annotations/relevancy/caption_relevancy_EPIC_100_retrieval_train.pkl"
    rel = pickle.loads(rel_path.read_bytes())
    rel[2] = 0.05
    rel_path.write_bytes(pickle.dumps(rel))
    with pytest.raises(BenchmarkDataError, match=r"P01_01_2 \(row 2\) has no caption with relevancy > 0.1"):
        run_task("ek100-mir", root, tmp_path / "o", "data.batch_size=2")


def test_command_line_aliases_and_usage():
    from pretrain.finetune.train import translate_argv

    assert translate_argv(["ek100-mir", "encoder=egovideo_l", "checkpoint=x.pt", "data=/d", "out=/o", "optim.lr=1"]) == [
        "--config-name", "ek100_mir", "model.name=egovideo_l", "model.checkpoint=x.pt", "data.root=/d",
        "train.out=/o", "optim.lr=1"]
    with pytest.warns(FutureWarning, match="egohod-finetune: train.out_dir= is deprecated; use train.out="):
        assert translate_argv(["egtea", "train.out_dir=/o"]) == ["--config-name", "egtea", "train.out=/o"]
    with pytest.raises(SystemExit, match="usage: egohod-finetune <ek100-mir|ek100-cls|egtea>"):
        translate_argv(["mir"])


def test_config_errors_name_the_key(egtea, tmp_path):
    with pytest.raises(ValueError, match="eval.num_crops=2"):
        make_cfg("egtea", egtea, tmp_path, "eval.num_crops=2")
    with pytest.raises(ValueError, match="data.split=4"):
        make_cfg("egtea", egtea, tmp_path, "data.split=4")


def test_torchrun_ddp_matches_one_process_with_the_same_global_batch(egtea, tmp_path):
    """2 ranks x batch 1 see the same clips per step as 1 process x batch 2 (ResumableSampler
    interleaves, per-clip randomness is keyed by (seed, epoch, index)), so after DDP's gradient
    averaging the weights agree; the evaluation split over the ranks scores as one process's."""
    import os
    import subprocess
    import sys

    from egohod.models.checkpoint_io import read_checkpoint_with_meta

    args = [f"data={egtea}", *FAST, "train.epochs=1", "eval.batch_size=1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ddp = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
           "pretrain.finetune", "egtea", f"out={ddp}", "data.batch_size=1", *args]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    one = tmp_path / "one"
    run_task("egtea", egtea, one, "data.batch_size=2", "train.epochs=1", "eval.batch_size=1")
    sd, meta = read_checkpoint_with_meta(ddp / "checkpoints" / "last" / "model.pt")
    s1, m1 = read_checkpoint_with_meta(one / "checkpoints" / "last" / "model.pt")
    assert meta["step"] == m1["step"] == 2
    moved = [k for k in sd if not torch.equal(sd[k], fixtures_initial_weights()[k])]
    assert moved, "training changed no weight"
    for k in sd:
        assert torch.allclose(sd[k], s1[k], atol=1e-5), k
    for k, v in meta["finetune"]["heads"].items():
        assert torch.allclose(v, m1["finetune"]["heads"][k], atol=1e-5), k
    vd, v1 = val(ddp)[2], val(one)[2]
    assert {k: vd[k] for k in ("top1", "top5", "mean_class_acc")} == {k: v1[k] for k in ("top1", "top5", "mean_class_acc")}


def fixtures_initial_weights() -> dict:
    import egohod

    return egohod.create_model("egovideo_tiny", num_frames=4, seed=0).state_dict()
