"""The shared training loop for every learned model.

AdamW with a one-cycle schedule, early stopping on a validation metric chosen by the model's
task (pixel IoU for the U-Net, PQ for detectors), a checkpoint every epoch
(``--resume`` continues from it), deterministic seeds, AMP on CUDA, a progress bar and a CSV
log with one row per epoch. The model and its loss are supplied by the caller
through a :class:`TrainTask` (composition, as in torchvision's detection models, which
compute their own losses).
"""

from __future__ import annotations

import csv
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, default_collate

from astrostatlearn.errors import InputError


@dataclass
class TrainConfig:
    """Training hyper-parameters. ``steps_per_epoch``: cap the batches per epoch (None: all).

    Early stopping: training stops after ``patience`` epochs without a better validation metric,
    counting only epochs from ``min_epochs`` on (None: half of ``epochs``). Before that the
    one-cycle learning rate is still high and validation IoU is noisy, so a long schedule would
    otherwise stop before it anneals. ``clip_grad``: clip the gradient norm (None: no clipping).
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
    clip_grad: float | None = None


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
    """One epoch: mean training loss, validation loss (NaN where the model gives none in eval
    mode) and the validation metric that selects the best model (higher is better); ``terms``:
    the mean of each training loss term where the task gives several (they sum to ``train_loss``)."""

    epoch: int
    train_loss: float
    val_loss: float
    val_metric: float
    metric: str
    lr: float
    seconds: float
    terms: dict[str, float] = field(default_factory=dict)


class TrainTask(Protocol):
    """How the shared loop talks to one kind of model (composition, as in torchvision).

    ``metric``: name of the validation metric (higher is better), e.g. ``"iou"`` or ``"pq"``.
    ``collate``: items -> batch (a custom collate, e.g. lists of images and target dicts).
    ``to_device``: move a batch. ``batch_size``: items in a batch. ``losses``: the model's loss
    terms for a batch in train mode; a model that computes its own losses (torchvision's
    ``model(images, targets) -> {name: tensor}``) just returns them. ``validate``: (validation
    loss, metric) over the validation batches, the model in eval mode.
    """

    metric: str

    def collate(self, items: list[Any]) -> Any: ...

    def to_device(self, batch: Any, device: torch.device) -> Any: ...

    def batch_size(self, batch: Any) -> int: ...

    def losses(self, model: nn.Module, batch: Any) -> dict[str, torch.Tensor]: ...

    def validate(self, model: nn.Module, batches: Iterable[Any], device: torch.device) -> tuple[float, float]: ...


class PixelTask:
    """A model that maps ``batch["image"]`` to logits, with a loss function of (logits, batch);
    validated by foreground pixel IoU (channel 0 > 0 against ``batch["mask"]`` unless ``iou_of``
    says otherwise)."""

    metric = "iou"

    def __init__(self, loss_fn: Callable[[torch.Tensor, dict[str, torch.Tensor]], torch.Tensor],
                 iou_of: Callable[[torch.Tensor, dict[str, torch.Tensor]], tuple[float, float]] | None = None,
                 amp: bool = False) -> None:
        self.loss_fn, self.iou_of, self.amp = loss_fn, iou_of or _default_iou, amp
        self.collate = default_collate

    def to_device(self, batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
        return {k: v.to(device) for k, v in batch.items()}

    def batch_size(self, batch: dict[str, torch.Tensor]) -> int:
        return int(batch["image"].shape[0])

    def losses(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"loss": self.loss_fn(model(batch["image"]), batch)}

    def validate(self, model: nn.Module, batches: Iterable[dict[str, torch.Tensor]],
                 device: torch.device) -> tuple[float, float]:
        vl, vn, inter, union = 0.0, 0, 0.0, 0.0
        for batch in batches:
            batch = self.to_device(batch, device)
            with torch.autocast(device.type, enabled=self.amp and device.type == "cuda"):
                logits = model(batch["image"])
                vl += float(self.loss_fn(logits, batch)) * batch["image"].shape[0]
            vn += batch["image"].shape[0]
            a, b = self.iou_of(logits.float(), batch)
            inter += a
            union += b
        return vl / max(vn, 1), inter / max(union, 1.0)


@dataclass
class _Session:
    """What one call of :func:`fit` sets up before its first epoch (:func:`_start_session`)."""

    task: Any
    device: torch.device
    train_dl: DataLoader
    val_dl: DataLoader
    steps: int  # batches per epoch
    opt: torch.optim.Optimizer
    sched: Any
    scaler: Any
    use_amp: bool
    gen: torch.Generator  # the training loader's shuffling (checkpointed)


def _start_session(model: nn.Module, task: Any, train: Dataset, val: Dataset, cfg: TrainConfig) -> _Session:
    """Seeds, device, loaders, AdamW with its one-cycle schedule and the AMP scaler, in an order
    that keeps runs with the same seed identical."""
    seed_everything(cfg.seed)
    device = pick_device(cfg.device)
    model.to(device)
    gen = torch.Generator().manual_seed(cfg.seed)
    train_dl = DataLoader(train, batch_size=cfg.batch_size, shuffle=True, drop_last=len(train) > cfg.batch_size,
                          num_workers=cfg.num_workers, generator=gen, collate_fn=task.collate)
    val_dl = DataLoader(val, batch_size=cfg.batch_size, shuffle=False, num_workers=cfg.num_workers,
                        collate_fn=task.collate)
    steps = min(len(train_dl), cfg.steps_per_epoch or len(train_dl))
    opt = make_optimizer(model, cfg)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[g["lr"] for g in opt.param_groups],
                                                total_steps=cfg.epochs * steps, pct_start=0.15)
    use_amp = cfg.amp and device.type == "cuda"
    return _Session(task, device, train_dl, val_dl, steps, opt, sched, torch.amp.GradScaler("cuda", enabled=use_amp),
                    use_amp, gen)


def _train_epoch(model: nn.Module, run: _Session, cfg: TrainConfig, epoch: int,
                 progress: bool) -> tuple[float, dict[str, float]]:
    """One epoch of ``run.steps`` batches: (mean loss, mean of each loss term where the task
    gives several), both per sample."""
    model.train()
    total, n, term_sums = 0.0, 0, {}
    it: Any = run.train_dl
    if progress:
        from tqdm import tqdm

        it = tqdm(run.train_dl, total=run.steps, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch", leave=False)
    for i, batch in enumerate(it):
        if i >= run.steps:
            break
        batch = run.task.to_device(batch, run.device)
        run.opt.zero_grad(set_to_none=True)
        with torch.autocast(run.device.type, enabled=run.use_amp):
            terms = run.task.losses(model, batch)
            loss = sum(terms.values())
        run.scaler.scale(loss).backward()
        if cfg.clip_grad:
            run.scaler.unscale_(run.opt)
            nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
        run.scaler.step(run.opt)
        run.scaler.update()
        run.sched.step()
        size = run.task.batch_size(batch)
        total += float(loss.detach()) * size
        n += size
        for k, v in terms.items():
            term_sums[k] = term_sums.get(k, 0.0) + float(v.detach()) * size
    return total / max(n, 1), ({k: v / max(n, 1) for k, v in term_sums.items()} if len(term_sums) > 1 else {})


def fit(model: nn.Module, task: "TrainTask | Callable[[torch.Tensor, dict[str, torch.Tensor]], torch.Tensor]",
        train: Dataset, val: Dataset, cfg: TrainConfig, checkpoint: Path, log_csv: Path,
        on_best: Callable[[nn.Module, EpochStats], None], resume: bool = False, progress: bool = True,
        on_epoch: Callable[[nn.Module, EpochStats], None] | None = None) -> list[EpochStats]:
    """Train ``model`` and call ``on_best`` whenever the validation metric improves (and
    ``on_epoch``, if given, after every epoch, e.g. to keep snapshots).

    ``task`` (a :class:`TrainTask`) supplies the collate function, the loss terms and the
    validation metric; a plain loss function of (logits, batch) means a :class:`PixelTask`.
    The loss minimised is the sum of the task's loss terms. Each epoch is checkpointed (model,
    optimiser, schedule, RNGs) and logged as a row of ``log_csv``.
    """
    if len(train) == 0 or len(val) == 0:
        raise InputError("training needs non-empty train and validation sets")
    if not hasattr(task, "losses"):
        task = PixelTask(task, amp=cfg.amp)  # type: ignore[arg-type]
    run = _start_session(model, task, train, val, cfg)
    min_epochs = cfg.epochs // 2 if cfg.min_epochs is None else cfg.min_epochs
    start, best, stale, history = 0, -float("inf"), 0, []
    if resume and checkpoint.exists():
        start, best, stale, history = _resume(checkpoint, model, run.opt, run.sched, run.gen, run.device, run.steps,
                                              cfg.epochs)
    elif log_csv.exists():
        log_csv.unlink()
    for epoch in range(start, cfg.epochs):
        t0 = time.perf_counter()
        for ds in (train, val):
            if hasattr(ds, "set_epoch"):
                ds.set_epoch(epoch)
        train_loss, terms = _train_epoch(model, run, cfg, epoch, progress)
        model.eval()
        with torch.inference_mode():
            val_loss, val_metric = task.validate(model, run.val_dl, run.device)
        stats = EpochStats(epoch, train_loss, val_loss, val_metric, task.metric, run.opt.param_groups[-1]["lr"],
                           time.perf_counter() - t0, terms)
        history.append(stats)
        _append_csv(log_csv, stats)
        if stats.val_metric > best:
            best, stale = stats.val_metric, 0
            on_best(model, stats)
        else:
            stale += 1
        _save_checkpoint(checkpoint, model, run.opt, epoch, best, stale, history, run.gen)
        if on_epoch is not None:
            on_epoch(model, stats)
            model.train()
        if progress:
            print(f"epoch {epoch + 1}: train loss {stats.train_loss:.4f}, val loss {stats.val_loss:.4f}, "
                  f"val {task.metric} {stats.val_metric:.4f}{' (best)' if stale == 0 else ''}, {stats.seconds:.0f} s",
                  flush=True)
        if min(stale, epoch + 1 - min_epochs) >= cfg.patience:
            break
    return history


def fit_and_save(net: nn.Module, task: "TrainTask", train: Dataset, val: Dataset, cfg: TrainConfig, out: Path,
                 save: Callable[[nn.Module, Path], Any], resume: bool = False, progress: bool = True,
                 snapshot_every: int = 0) -> list[EpochStats]:
    """:func:`fit`, saving the best model to ``out`` with ``save(model, path)`` (and, every
    ``snapshot_every`` epochs, to ``<out stem>.epochNNN.pt``); the checkpoint is ``out.ckpt`` and
    the log ``out`` with suffix ``.csv``."""

    def on_best(model: nn.Module, stats: EpochStats) -> None:
        save(model, out)
        model.train()

    def on_epoch(model: nn.Module, stats: EpochStats) -> None:
        if snapshot_every > 0 and (stats.epoch + 1) % snapshot_every == 0:
            save(model, out.with_name(f"{out.stem}.epoch{stats.epoch + 1:03d}.pt"))

    return fit(net, task, train, val, cfg, out.with_suffix(out.suffix + ".ckpt"), out.with_suffix(".csv"), on_best,
               resume=resume, progress=progress, on_epoch=on_epoch)


def start_from_file(segmenter_class: Any, init: str | Path, net: nn.Module, variant: str) -> Any:
    """Load the weights of the model file ``init`` (a ``segmenter_class`` model) into ``net`` to
    fine-tune it, and return that segmenter; refused (InputError) when its network configuration or
    variant differs from ``net``'s and ``variant``."""
    start = segmenter_class.load_file(init)
    if start.net_.config != net.config or start.variant != variant:
        raise InputError(f"cannot fine-tune from {init}: its network {start.net_.config} ({start.variant}) differs "
                         f"from {net.config} ({variant})")
    net.load_state_dict(start.net_.state_dict())  # float16 on disk, copied into net's float32
    return start


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW; a model may ask for per-group learning-rate factors with ``param_groups_lr()``
    (a list of (parameters, factor)), e.g. a lower rate for a backbone (as DETR trains)."""
    groups_fn = getattr(model, "param_groups_lr", None)
    if groups_fn is None:
        return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    groups = [{"params": list(p), "lr": cfg.lr * f} for p, f in groups_fn()]
    return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


def _resume(checkpoint: Path, model: nn.Module, opt: Any, sched: Any, gen: torch.Generator, device: torch.device,
            steps: int, epochs: int) -> tuple[int, float, int, list[EpochStats]]:
    """Restore model, optimiser, RNG and schedule from ``checkpoint``; (start, best, stale, history)."""
    ck = torch.load(checkpoint, map_location=device, weights_only=False)
    model.load_state_dict(ck["model"])
    opt.load_state_dict(ck["optimizer"])
    start, best, stale = ck["epoch"] + 1, ck["best"], ck["stale"]
    # The schedule is rebuilt for this run's total (more epochs may be asked for on resume)
    # and fast-forwarded to where training stopped; with unchanged epochs it is the same curve.
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(min(start * steps, epochs * steps - 1)):
            sched.step()
    history = [EpochStats(**h) for h in ck["history"]]
    torch.set_rng_state(ck["rng_torch"])
    np.random.set_state(ck["rng_numpy"])
    gen.set_state(ck["rng_loader"])
    return start, best, stale, history
def _default_iou(logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> tuple[float, float]:
    pred = logits[:, 0] > 0
    true = batch["mask"] > 0.5
    return float((pred & true).sum()), float((pred | true).sum())


def _append_csv(path: Path, s: EpochStats) -> None:
    """One row per epoch; the loss terms as columns ``term_<name>``."""
    row = {k: v for k, v in asdict(s).items() if k != "terms"}
    row.update({f"term_{k}": v for k, v in s.terms.items()})
    new = not path.exists()
    with open(path, "a", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(row))
        if new:
            w.writeheader()
        w.writerow(row)


def _save_checkpoint(path: Path, model: nn.Module, opt: Any, epoch: int, best: float, stale: int,
                     history: list[EpochStats], gen: torch.Generator) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                "epoch": epoch, "best": best, "stale": stale, "history": [asdict(h) for h in history],
                "rng_torch": torch.get_rng_state(), "rng_numpy": np.random.get_state(),
                "rng_loader": gen.get_state()}, tmp)
    os.replace(tmp, path)
