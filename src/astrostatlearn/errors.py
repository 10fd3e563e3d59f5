"""User-facing errors. The CLI prints them as one line and exits with code 2."""

from __future__ import annotations

from pathlib import Path


class InputError(ValueError):
    """Bad input from the user: a missing, malformed or inconsistent file or argument.

    The message is one line and names the file (when there is one) and the problem.
    """

    def __init__(self, problem: str, path: str | Path | None = None) -> None:
        self.path = None if path is None else Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}" if path is not None else problem)


class OutputExistsError(InputError):
    """An output file already exists and ``overwrite`` was not requested."""

    def __init__(self, path: str | Path) -> None:
        super().__init__("already exists; pass --overwrite to replace it", path)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that a terminated run cleans up like Ctrl-C."""
