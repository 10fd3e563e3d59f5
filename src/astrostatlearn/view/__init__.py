"""A zoomable offline web viewer for whole fields: the image, segmentation overlays and catalogues.

``build_site`` renders a static site (tile pyramids in bounded memory, in parallel, see
:mod:`.site`); ``serve_site`` serves it on 127.0.0.1. The browser side is OpenSeadragon, shipped
in ``static/openseadragon`` from its npm package (``make viewer-assets``), never from a CDN.
"""

from astrostatlearn.view.serve import serve_site
from astrostatlearn.view.site import SiteResult, build_site

__all__ = ["SiteResult", "build_site", "serve_site"]
