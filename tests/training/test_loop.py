import csv
from pathlib import Path

import pytest
import torch

from astrostatlearn.methods import load_segmenter
from astrostatlearn.training import TrainConfig, train_unet


def _cfg(epochs: int) -> TrainConfig:
    return TrainConfig(epochs=epochs, batch_size=4, steps_per_epoch=3, lr=1e-2, seed=1)


def test_train_writes_model_log_and_checkpoint_and_resumes(small_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.pt"
    hist = train_unet([small_dataset], out, _cfg(2), width=4, depth=2, crop=32, progress=False, snapshot_every=1)
    assert len(hist) == 2 and out.exists() and out.with_suffix(".pt.ckpt").exists()
    assert sorted(p.name for p in tmp_path.glob("m.epoch*.pt")) == ["m.epoch001.pt", "m.epoch002.pt"]
    last = torch.load(out.with_suffix(".pt.ckpt"), weights_only=False)["model"]
    snap = load_segmenter(tmp_path / "m.epoch002.pt").net_.state_dict()
    for k, v in last.items():  # the last snapshot holds the last epoch's weights (stored as float16)
        torch.testing.assert_close(snap[k].to(v.dtype), v, atol=1e-2, rtol=1e-2)
    rows = list(csv.DictReader(open(out.with_suffix(".csv"))))
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    assert all(0.0 <= float(r["val_metric"]) <= 1.0 and float(r["train_loss"]) > 0 for r in rows)
    seg = load_segmenter(out)
    assert seg.variant == "soft+rms" and seg.net_.config["in_channels"] == 2
    more = train_unet([small_dataset], out, _cfg(3), width=4, depth=2, crop=32, resume=True, progress=False)
    assert [h.epoch for h in more] == [0, 1, 2]
    assert len(list(csv.DictReader(open(out.with_suffix(".csv"))))) == 3


def test_training_is_deterministic(small_dataset: Path, tmp_path: Path) -> None:
    a = train_unet([small_dataset], tmp_path / "a.pt", _cfg(1), width=4, depth=2, crop=32, progress=False)
    b = train_unet([small_dataset], tmp_path / "b.pt", _cfg(1), width=4, depth=2, crop=32, progress=False)
    assert a[0].train_loss == pytest.approx(b[0].train_loss, rel=1e-6)
    sa = torch.load(tmp_path / "a.pt.ckpt", weights_only=False)["model"]
    sb = torch.load(tmp_path / "b.pt.ckpt", weights_only=False)["model"]
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k])


def test_early_stopping_waits_for_min_epochs(tmp_path: Path) -> None:
    from torch import nn

    from astrostatlearn.training.loop import fit

    item = {"image": torch.ones(1, 8, 8), "mask": torch.ones(8, 8)}
    data = [item] * 4

    def run(min_epochs: int) -> int:
        model = nn.Conv2d(1, 2, 1)
        nn.init.zeros_(model.weight)
        nn.init.constant_(model.bias, -1.0)  # predicts background everywhere: validation IoU stays 0
        cfg = TrainConfig(epochs=8, batch_size=2, lr=0.0, weight_decay=0.0, patience=2, min_epochs=min_epochs)
        tag = f"m{min_epochs}"
        hist = fit(model, lambda logits, b: (logits ** 2).mean(), data, data, cfg, tmp_path / f"{tag}.ckpt",
                   tmp_path / f"{tag}.csv", lambda m, s: None, progress=False)
        return len(hist)

    assert run(0) == 3  # best at epoch 1, then 2 stale epochs
    assert run(5) == 7  # stale epochs count only from epoch 6 on
    assert run(8) == 8  # never stops early


def test_resumed_run_reproduces_an_uninterrupted_one(small_dataset: Path, tmp_path: Path) -> None:
    from astrostatlearn.methods.unet import UNet
    from astrostatlearn.training.loop import fit
    from astrostatlearn.training.unet import _EpochAware, load_splits, unet_loss

    trained: list[int] = []

    def run(tag: str, stop_after: int | None, resume: bool = False) -> list:
        trained.clear()
        train, val, _, ch = load_splits([small_dataset], True, 0.3, (0.5, 2.0), 1, 32)
        torch.manual_seed(0)
        net = UNet(in_channels=len(ch), width=4, depth=2)

        def on_epoch(model, stats):
            trained.append(stats.epoch)
            if stop_after is not None and stats.epoch + 1 == stop_after:
                raise KeyboardInterrupt  # killed after the checkpoint of this epoch

        try:
            return fit(net, unet_loss, _EpochAware(train), val, _cfg(3), tmp_path / f"{tag}.ckpt", tmp_path / f"{tag}.csv",
                       lambda m, s: None, resume=resume, progress=False, on_epoch=on_epoch)
        except KeyboardInterrupt:
            return []

    straight = run("a", None)
    assert run("b", 1) == []
    resumed = run("b", None, resume=True)
    assert [h.epoch for h in resumed] == [0, 1, 2] and trained == [1, 2]  # epoch 0 came from the checkpoint
    for x, y in zip(straight, resumed):
        assert x.train_loss == pytest.approx(y.train_loss, rel=1e-6) and x.val_metric == pytest.approx(y.val_metric)
    wa = torch.load(tmp_path / "a.ckpt", weights_only=False)["model"]
    wb = torch.load(tmp_path / "b.ckpt", weights_only=False)["model"]
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k])


def test_fine_tuning_starts_from_the_given_model_and_refuses_another_network(small_dataset: Path, tmp_path: Path) -> None:
    import torch

    from astrostatlearn.errors import InputError
    from astrostatlearn.methods.unet import UNetSegmenter

    base = tmp_path / "base.pt"
    train_unet([small_dataset], base, _cfg(1), width=4, depth=2, crop=32, progress=False)
    start = UNetSegmenter.load_file(base).net_.state_dict()
    cfg = _cfg(1)
    cfg.lr = 1e-12  # a step too small to move the weights: the result is the starting model
    tuned = tmp_path / "tuned.pt"
    train_unet([small_dataset], tuned, cfg, width=4, depth=2, crop=32, progress=False, init=base)
    after = UNetSegmenter.load_file(tuned).net_.state_dict()
    for k, v in start.items():
        if v.is_floating_point() and "running" not in k:
            torch.testing.assert_close(after[k], v, atol=1e-3, rtol=1e-3, msg=k)
    with pytest.raises(InputError, match="cannot fine-tune"):
        train_unet([small_dataset], tmp_path / "x.pt", _cfg(1), width=8, depth=2, crop=32, progress=False, init=base)
