"""Fit a classical method (forest, kmeans) on tiles of a field's training band."""

from __future__ import annotations

from typing import TYPE_CHECKING

from astrostatlearn.errors import InputError

if TYPE_CHECKING:
    from astrostatlearn.methods.base import Segmenter, TrainRequest


def fit_on_train_tiles(cls: "type[Segmenter]", request: "TrainRequest", max_tiles: int = 64) -> str:
    """Fit ``cls`` on up to ``max_tiles`` 512^2 tiles of the training band of ``request.fields[0]``,
    record the variant in the model and save it to ``request.out``; returns a one-line summary."""
    from astrostatlearn.datasets import leak_free_splits
    from astrostatlearn.field import Field, check_writable, scan_field
    from astrostatlearn.preprocess import fit_variant
    from astrostatlearn.segment import BackgroundMesh, region_tiles

    if len(request.fields) != 1:
        raise InputError(f"method {cls.name!r} trains on one field")
    if request.params:
        raise InputError(f"method {cls.name!r} has no trainer options (got {', '.join(sorted(request.params))})")
    check_writable(request.out, request.overwrite)
    seg = cls()
    if not seg.needs_fit:
        raise InputError(f"method {cls.name!r} has nothing to train")
    variant = request.variant or cls.default_variant
    field_path = request.fields[0]
    with Field.open(field_path) as f:
        if seg.supervised and f.true is None:
            raise InputError(f"method {cls.name!r} is supervised: the field needs a truth map", field_path)
        scan_field(f)  # the rms and truth checks every command makes
        plan = leak_free_splits(f, request.fractions)
        pre = fit_variant(f, variant)
        mesh = BackgroundMesh.from_field(f, pre)
        tiles = list(region_tiles(f, pre, mesh, plan.regions["train"], tile=512, with_truth=f.true is not None,
                                  max_tiles=max_tiles))
        seg.fit(tiles)
    seg.variant_ = variant
    seg.save(request.out)
    return f"wrote {request.out}: {cls.name} fitted on the train split {plan.regions['train']} ({len(tiles)} tiles)"
