"""The shared training loop for the learned models.

AdamW with a one-cycle schedule, early stopping on validation IoU, a checkpoint every epoch
(``--resume`` continues from it), deterministic seeds, AMP on CUDA, a progress bar and a CSV
log with one row per epoch. The model and its loss are supplied by the caller
(composition, as in torchvision's detection models).
"""

from __future__ import annotations

import csv
import os
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from astrostatlearn.errors import InputError


@dataclass
class TrainConfig:
    """Training hyper-parameters. ``steps_per_epoch``: cap the batches per epoch (None: all).

    Early stopping: training stops after ``patience`` epochs without a better validation IoU,
    counting only epochs from ``min_epochs`` on (None: half of ``epochs``). Before that the
    one-cycle learning rate is still high and validation IoU is noisy, so a long schedule would
    otherwise stop before it anneals.
    """

    epochs: int = 30
    batch_size: int = 16
    lr: float = 3e-3
    weight_decay: float = 1e-4
    patience: int = 6
    min_epochs: int | None = None
    seed: int = 0
    num_workers: int = 0
    steps_per_epoch: int | None = None
    device: str | None = None
    amp: bool = True


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def pick_device(name: str | None) -> torch.device:
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass
class EpochStats:
    epoch: int
    train_loss: float
    val_loss: float
    val_iou: float
    lr: float
    seconds: float


def fit(model: nn.Module, loss_fn: Callable[[torch.Tensor, dict[str, torch.Tensor]], torch.Tensor],
        train: Dataset, val: Dataset, cfg: TrainConfig, checkpoint: Path, log_csv: Path,
        on_best: Callable[[nn.Module, EpochStats], None], resume: bool = False, progress: bool = True,
        iou_of: Callable[[torch.Tensor, dict[str, torch.Tensor]], tuple[float, float]] | None = None,
        on_epoch: Callable[[nn.Module, EpochStats], None] | None = None) -> list[EpochStats]:
    """Train ``model`` and call ``on_best`` whenever validation IoU improves (and ``on_epoch``, if
    given, after every epoch, e.g. to keep snapshots).

    ``loss_fn(logits, batch)`` gives the loss; ``iou_of(logits, batch)`` gives (intersection, union)
    foreground pixel counts for the validation IoU (default: channel 0 > 0 vs ``batch['mask']``).
    """
    if len(train) == 0 or len(val) == 0:
        raise InputError("training needs non-empty train and validation sets")
    seed_everything(cfg.seed)
    device = pick_device(cfg.device)
    model.to(device)
    gen = torch.Generator().manual_seed(cfg.seed)
    train_dl = DataLoader(train, batch_size=cfg.batch_size, shuffle=True, drop_last=len(train) > cfg.batch_size,
                          num_workers=cfg.num_workers, generator=gen)
    val_dl = DataLoader(val, batch_size=cfg.batch_size, shuffle=False, num_workers=cfg.num_workers)
    steps = min(len(train_dl), cfg.steps_per_epoch or len(train_dl))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps, pct_start=0.15)
    use_amp = cfg.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    iou_of = iou_of or _default_iou
    min_epochs = cfg.epochs // 2 if cfg.min_epochs is None else cfg.min_epochs
    start, best, stale, history = 0, -1.0, 0, []
    if resume and checkpoint.exists():
        ck = torch.load(checkpoint, map_location=device, weights_only=False)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        start, best, stale = ck["epoch"] + 1, ck["best"], ck["stale"]
        # The schedule is rebuilt for this run's total (more epochs may be asked for on resume)
        # and fast-forwarded to where training stopped; with unchanged epochs it is the same curve.
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            for _ in range(min(start * steps, cfg.epochs * steps - 1)):
                sched.step()
        history = [EpochStats(**h) for h in ck["history"]]
        torch.set_rng_state(ck["rng_torch"])
        np.random.set_state(ck["rng_numpy"])
        gen.set_state(ck["rng_loader"])
    elif log_csv.exists():
        log_csv.unlink()
    for epoch in range(start, cfg.epochs):
        t0 = time.perf_counter()
        for ds in (train, val):
            if hasattr(ds, "set_epoch"):
                ds.set_epoch(epoch)
        model.train()
        total, n = 0.0, 0
        it: Any = train_dl
        if progress:
            from tqdm import tqdm

            it = tqdm(train_dl, total=steps, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch", leave=False)
        for i, batch in enumerate(it):
            if i >= steps:
                break
            batch = {k: v.to(device) for k, v in batch.items()}
            opt.zero_grad(set_to_none=True)
            with torch.autocast(device.type, enabled=use_amp):
                loss = loss_fn(model(batch["image"]), batch)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            sched.step()
            total += float(loss.detach()) * batch["image"].shape[0]
            n += batch["image"].shape[0]
        model.eval()
        vl, vn, inter, union = 0.0, 0, 0.0, 0.0
        with torch.inference_mode():
            for batch in val_dl:
                batch = {k: v.to(device) for k, v in batch.items()}
                with torch.autocast(device.type, enabled=use_amp):
                    logits = model(batch["image"])
                    vl += float(loss_fn(logits, batch)) * batch["image"].shape[0]
                vn += batch["image"].shape[0]
                a, b = iou_of(logits.float(), batch)
                inter += a
                union += b
        stats = EpochStats(epoch, total / max(n, 1), vl / max(vn, 1), inter / max(union, 1.0),
                           opt.param_groups[0]["lr"], time.perf_counter() - t0)
        history.append(stats)
        _append_csv(log_csv, stats)
        if stats.val_iou > best:
            best, stale = stats.val_iou, 0
            on_best(model, stats)
        else:
            stale += 1
        _save_checkpoint(checkpoint, model, opt, epoch, best, stale, history, gen)
        if on_epoch is not None:
            on_epoch(model, stats)
            model.train()
        if progress:
            print(f"epoch {epoch + 1}: train loss {stats.train_loss:.4f}, val loss {stats.val_loss:.4f}, "
                  f"val IoU {stats.val_iou:.4f}{' (best)' if stale == 0 else ''}, {stats.seconds:.0f} s", flush=True)
        if min(stale, epoch + 1 - min_epochs) >= cfg.patience:
            break
    return history


def _default_iou(logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> tuple[float, float]:
    pred = logits[:, 0] > 0
    true = batch["mask"] > 0.5
    return float((pred & true).sum()), float((pred | true).sum())


def _append_csv(path: Path, s: EpochStats) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(asdict(s)))
        if new:
            w.writeheader()
        w.writerow(asdict(s))


def _save_checkpoint(path: Path, model: nn.Module, opt: Any, epoch: int, best: float, stale: int,
                     history: list[EpochStats], gen: torch.Generator) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                "epoch": epoch, "best": best, "stale": stale, "history": [asdict(h) for h in history],
                "rng_torch": torch.get_rng_state(), "rng_numpy": np.random.get_state(),
                "rng_loader": gen.get_state()}, tmp)
    os.replace(tmp, path)
