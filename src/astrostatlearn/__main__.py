"""``python -m astrostatlearn``: the same command line as ``astrostatlearn``."""

from astrostatlearn.cli import main

main()
