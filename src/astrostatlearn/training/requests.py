"""From ``astrostatlearn train METHOD`` to the shared loop: checks and patch datasets, shared by
every learned method's trainer."""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from astrostatlearn.errors import InputError

if TYPE_CHECKING:
    from astrostatlearn.methods.base import Segmenter, TrainRequest


def check_loop_request(request: "TrainRequest", cls: "type[Segmenter]") -> None:
    """Refuse unknown trainer options, a negative ``snapshot_every`` and, unless resuming, an
    existing output without ``overwrite``."""
    from astrostatlearn.field import check_writable

    unknown = sorted(set(request.params) - set(cls.train_options))
    if unknown:
        raise InputError(f"{cls.name} has no trainer option {unknown[0]!r} "
                         f"(its options: {', '.join(sorted(cls.train_options))})")
    if request.snapshot_every < 0:
        raise InputError(f"--snapshot-every must be >= 0, got {request.snapshot_every}")
    if not request.resume:
        check_writable(request.out, request.overwrite)


def prepare_datasets(request: "TrainRequest", variant: str, coco: bool = False) -> list[Path]:
    """Patch datasets of ``request.fields`` beside the model (``OUT.datasets/dsK``), reused on
    ``--resume``; with ``coco``, also their COCO instances exports. A field without truth, or
    with an empty train or validation split, is refused."""
    from astrostatlearn.datasets import build_dataset
    from astrostatlearn.field import Field

    out = request.out
    dirs = []
    for k, fp in enumerate(request.fields):
        d = out.with_name(out.name + ".datasets") / f"ds{k}"
        if not (request.resume and (d / "manifest.json").exists()):
            with Field.open(fp) as f:
                if f.true is None:
                    raise InputError("training needs a truth map (true.fits)", fp)
                man = build_dataset(f, variant, d, patch=request.patch, fractions=request.fractions,
                                    seed=request.seed, overwrite=True, coco=coco)
            for split in ("train", "val"):
                if man["n_patches"][split] == 0:
                    raise InputError(f"the {split} split of this field has no patch with objects; "
                                     "use a larger field or other --split fractions", fp)
        dirs.append(d)
    return dirs


@contextmanager
def datasets_removed_if_refused(request: "TrainRequest") -> Iterator[None]:
    """Remove the patch datasets this request built (``OUT.datasets``) when the training is refused
    (an InputError) before any checkpoint was written, so a refused command leaves nothing behind."""
    root = request.out.with_name(request.out.name + ".datasets")
    existed = root.exists()
    try:
        yield
    except InputError:
        if not existed and not request.out.with_suffix(request.out.suffix + ".ckpt").exists():
            shutil.rmtree(root, ignore_errors=True)
        raise
