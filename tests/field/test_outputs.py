"""The output-set transaction: lock, refusal, commit as a set, roll-forward, debris."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from astrostatlearn.errors import OutputExistsError
from astrostatlearn.field.outputs import OutputBusyError, OutputSet, OutputWriteError

NAMES = ("a.txt", "b.txt", "c.txt")


def _write_set(dest: Path, tag: str, names=NAMES, overwrite=True, skip=()) -> None:
    with OutputSet(dest, NAMES, overwrite=overwrite) as tx:
        for n in names:
            if n not in skip:
                tx.path(n).write_text(tag)


def test_commit_writes_the_whole_set_and_nothing_else(tmp_path: Path) -> None:
    _write_set(tmp_path / "out", "one")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == list(NAMES)
    assert {(tmp_path / "out" / n).read_text() for n in NAMES} == {"one"}


def test_outputs_a_run_does_not_produce_are_removed(tmp_path: Path) -> None:
    _write_set(tmp_path / "out", "one")
    _write_set(tmp_path / "out", "two", skip=("c.txt",))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.txt", "b.txt"]
    assert (tmp_path / "out" / "a.txt").read_text() == "two"


def test_existing_outputs_are_refused_without_overwrite(tmp_path: Path) -> None:
    _write_set(tmp_path / "out", "one")
    with pytest.raises(OutputExistsError):
        _write_set(tmp_path / "out", "two", overwrite=False)
    assert (tmp_path / "out" / "a.txt").read_text() == "one"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == list(NAMES)


def test_an_output_that_appears_during_the_run_is_refused_at_commit(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(OutputExistsError):
        with OutputSet(out, NAMES) as tx:
            tx.path("a.txt").write_text("mine")
            (out / "b.txt").write_text("someone else's")  # a writer that ignores the lock
    assert sorted(p.name for p in out.iterdir()) == ["b.txt"]


def test_a_second_writer_is_refused_while_the_first_holds_the_lock(tmp_path: Path) -> None:
    first = OutputSet(tmp_path / "out", NAMES)
    first.open()
    try:
        with pytest.raises(OutputBusyError, match="another astrostatlearn run"):
            OutputSet(tmp_path / "out", NAMES).open()
    finally:
        first.abort()
    _write_set(tmp_path / "out", "after")  # the lock is free again
    assert (tmp_path / "out" / "a.txt").read_text() == "after"


def test_failure_removes_staging_and_the_folders_it_made(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError):
        with OutputSet(tmp_path / "deep" / "out", NAMES) as tx:
            tx.path("a.txt").write_text("x")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_whole_folder_sets_replace_the_folder(tmp_path: Path) -> None:
    for tag in ("one", "two"):
        with OutputSet(tmp_path / "ds", None, overwrite=True) as tx:
            (tx.path() / "sub").mkdir()
            (tx.path() / "sub" / tag).write_text(tag)
    assert [p.name for p in (tmp_path / "ds" / "sub").iterdir()] == ["two"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_disk_errors_name_the_destination_not_the_staging_folder(tmp_path: Path) -> None:
    with pytest.raises(OutputWriteError) as err:
        with OutputSet(tmp_path / "out", NAMES) as tx:
            raise OSError(28, "No space left on device", str(tx.path("a.txt")))
    assert ".staging" not in str(err.value) and str(tmp_path / "out") in str(err.value)
    assert "No space left" in str(err.value)


def test_refuses_when_the_disk_is_known_to_be_too_small(tmp_path: Path) -> None:
    with pytest.raises(OutputWriteError, match="GB are free"):
        OutputSet(tmp_path / "out", NAMES, expected_bytes=1 << 62).open()
    assert list(tmp_path.iterdir()) == []


def test_a_commit_killed_midway_is_rolled_forward_by_the_next_writer(tmp_path: Path) -> None:
    """A real process dies (os._exit) after the first of three renames of its commit; the next
    writer to the folder completes that commit before its own work, so the folder never holds a
    mix of the two runs."""
    out = tmp_path / "out"
    _write_set(out, "old")
    script = textwrap.dedent(f"""
        import os
        from astrostatlearn.field import outputs
        real = os.replace
        moves = []
        def dying_replace(src, dst):
            real(src, dst)
            moves.append(dst)
            if str(dst).endswith(".txt"):
                os._exit(9)  # killed between two renames of the set
        outputs.os.replace = dying_replace
        with outputs.OutputSet({str(out)!r}, {NAMES!r}, overwrite=True) as tx:
            for n in {NAMES!r}:
                tx.path(n).write_text("new")
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert r.returncode == 9, r.stderr
    contents = sorted((out / n).read_text() for n in NAMES)
    assert contents == ["new", "old", "old"]  # the crash left a mixed set ...
    nxt = OutputSet(out, NAMES, overwrite=True)
    nxt.open()  # ... which the next writer completes first
    assert [(out / n).read_text() for n in NAMES] == ["new"] * 3
    nxt.abort()
    assert sorted(p.name for p in out.iterdir()) == list(NAMES)  # no staging, lock or journal left


def test_an_interrupt_during_the_commit_waits_for_the_whole_set(tmp_path: Path, monkeypatch) -> None:
    """Ctrl-C (as the CLI's signal handler raises it, :func:`~astrostatlearn.processes.interrupt`)
    after the first of three renames: the set is committed whole, with no journal left, and only
    then is the interrupt raised."""
    from astrostatlearn.field import outputs
    from astrostatlearn.processes import interrupt

    moved = []
    real_replace = outputs._replace

    def replace_then_interrupt(src, dst, staging):
        real_replace(src, dst, staging)
        moved.append(dst.name)
        if len(moved) == 1:
            interrupt(KeyboardInterrupt)  # what the SIGINT handler calls

    monkeypatch.setattr(outputs, "_replace", replace_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        _write_set(tmp_path / "out", "one")
    assert moved == list(NAMES)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == list(NAMES)  # no journal, staging or lock
    with pytest.raises(KeyboardInterrupt):  # outside a commit, the handler raises at once
        interrupt(KeyboardInterrupt)


def test_a_resumable_partial_state_is_refused_kept_or_replaced(tmp_path: Path) -> None:
    from astrostatlearn.field.outputs import PartialRunError

    out = tmp_path / "out"
    killed = OutputSet(out, NAMES, resumable=True)
    killed.open()
    killed.path("a.txt").write_text("half")
    killed._release(remove_lock=True)  # as a kill -9 leaves it: state on disk, lock gone with the process
    with pytest.raises(PartialRunError, match="--resume"):
        OutputSet(out, NAMES, resumable=True).open()
    with pytest.raises(RuntimeError):  # a resumed run that fails keeps the state for another try
        with OutputSet(out, NAMES, resume=True) as tx:
            assert tx.resumed and tx.path("a.txt").read_text() == "half"
            raise RuntimeError("fails again")
    with OutputSet(out, NAMES, resume=True) as tx:
        assert tx.path("a.txt").read_text() == "half"
        for n in NAMES[1:]:
            tx.path(n).write_text("done")
    assert sorted(p.name for p in out.iterdir()) == list(NAMES)  # committed; no partial state left
    killed = OutputSet(out, NAMES, overwrite=True, resumable=True)
    killed.open()
    killed.path("b.txt").write_text("half")
    killed._release(remove_lock=True)
    with OutputSet(out, NAMES, overwrite=True, resumable=True) as tx:  # overwrite starts again
        assert not tx.resumed and not tx.path("b.txt").exists()
        tx.path("a.txt").write_text("fresh")
    assert sorted(p.name for p in out.iterdir()) == ["a.txt"]
