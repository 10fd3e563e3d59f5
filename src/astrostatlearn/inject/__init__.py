"""Injection-recovery on real images: fake galaxies injected into a user's image (:mod:`.run`),
then recovered by each method and by SExtractor (:mod:`.recovery`)."""

from astrostatlearn.inject.run import InjectRequest, InjectResult, inject_image

__all__ = ["InjectRequest", "InjectResult", "inject_image"]

from astrostatlearn._callable import make_callable  # noqa: E402

make_callable(__name__, "inject")  # astrostatlearn.inject(...) is astrostatlearn.api.inject(...)
