"""Writing output files without losing data.

Rules every writer of NodeView follows (``detect --json``, ``--screenshot``, reports):

* An output path that is one of the input files is refused, always (even with overwrite).
* An output path that exists is refused unless ``overwrite``; what is not a regular file (a
  folder, a device such as ``/dev/null``, a FIFO) is refused in any case.
* These checks run before the work (:func:`check_output_path`), and again when the file is
  claimed: the data are first written and fsynced under hidden temporary names in the target
  folder, then each final name is claimed with ``os.link`` (which fails when the name exists:
  an atomic "create, never replace"), or replaced with ``os.replace`` under ``overwrite``.
* Files written together are a set (:func:`write_file_set`): all temporary files are complete
  before the first name is claimed, and when a claim fails (another run took the name, disk
  full, a signal), the names already claimed are removed again and every temporary file is
  deleted, so no half set and no temporary file is left behind. Temporary files of a run that
  was killed outright are hidden (``.NAME.nodeview-tmp-PID-XXXX``), match no report name, and
  are removed by the next write into that folder once their process is gone.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import stat
from collections.abc import Iterable, Sequence
from pathlib import Path

from .errors import InputError, NodeViewError

_TMP_RE = re.compile(r"\.(?P<name>.+)\.nodeview-tmp-(?P<pid>\d+)-[0-9a-f]{8}")


class OutputExistsError(InputError):
    """The output file exists (or another run claimed it first) and overwrite was not asked for."""


class OutputPathError(InputError):
    """The output path cannot be used: it is an input file, a folder, a device, or not writable."""


class OutputWriteError(NodeViewError):
    """Writing the output failed (disk full, permissions, ...); nothing was left behind."""


def file_identity(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    """``(st_dev, st_ino)`` of a path (following links), or None when it cannot be stat'ed."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return (st.st_dev, st.st_ino)


def input_identities(paths: Iterable[str | os.PathLike[str]]) -> set[tuple[int, int]]:
    """Identities of every input file under ``paths`` (folders walked, links followed for files)."""
    out: set[tuple[int, int]] = set()
    for p in paths:
        ident = file_identity(p)
        if ident is None:
            continue
        if os.path.isdir(p):
            for root, _dirs, files in os.walk(p):
                for name in files:
                    sub = file_identity(os.path.join(root, name))
                    if sub is not None:
                        out.add(sub)
        else:
            out.add(ident)
    return out


def check_output_path(
    path: str | os.PathLike[str],
    inputs: set[tuple[int, int]] | None = None,
    overwrite: bool = False,
    what: str = "output",
) -> Path:
    """Refuse an output path that would lose data; returns it as a :class:`Path`.

    Raises:
        OutputPathError: the path is an input file, not a regular file, or its folder is not writable.
        OutputExistsError: it exists and ``overwrite`` is False.
    """
    out = Path(path)
    try:
        st = os.stat(out)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise OutputPathError(f"{what} {out} cannot be used ({exc.strerror or exc})") from exc
    if st is not None:
        if inputs and (st.st_dev, st.st_ino) in inputs:
            raise OutputPathError(f"{what} {out} is one of the input files; choose another {what} path")
        if not stat.S_ISREG(st.st_mode):
            kind = "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file"
            raise OutputPathError(f"{what} {out} is {kind}; choose a file name")
        if not overwrite:
            raise OutputExistsError(f"{what} {out} already exists (use --overwrite to replace it)")
    check_writable_folder(out.parent if str(out.parent) else Path("."), what)
    return out


def check_writable_folder(folder: Path, what: str = "output") -> None:
    """Raise :class:`OutputPathError` unless a file can be created in ``folder`` (or in the nearest
    existing folder above it, when it does not exist yet)."""
    probe_dir = folder
    while not probe_dir.exists():
        if probe_dir.parent == probe_dir:
            break
        probe_dir = probe_dir.parent
    if not probe_dir.is_dir():
        raise OutputPathError(f"{what} folder {folder} is not a folder ({probe_dir} is a file)")
    probe = probe_dir / f".nodeview-probe-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        fd = os.open(probe, _CREATE_FLAGS, 0o600)
    except OSError as exc:
        raise OutputPathError(f"cannot write into {probe_dir} ({exc.strerror or exc})") from exc
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)


_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


def _temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.nodeview-tmp-{os.getpid()}-{secrets.token_hex(4)}")


def remove_stale_temps(folder: Path) -> None:
    """Delete temporary files of NodeView writers in ``folder`` whose process no longer runs."""
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        m = _TMP_RE.fullmatch(name)
        if m is None or int(m["pid"]) == os.getpid() or _pid_alive(int(m["pid"])):
            continue
        with contextlib.suppress(OSError):
            os.unlink(folder / name)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists
        return True
    return True


def _claim(tmp: Path, final: Path) -> None:
    """Give the complete file ``tmp`` the name ``final``, failing if ``final`` exists."""
    try:
        os.link(tmp, final)
        return
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
    # No hard links on this file system: claim the name exclusively, then move the data onto it.
    fd = os.open(final, _CREATE_FLAGS, 0o644)
    os.close(fd)
    os.replace(tmp, final)


def write_file_set(
    items: Sequence[tuple[Path, bytes]], overwrite: bool = False, what: str = "output"
) -> list[Path]:
    """Write each ``(path, data)`` as one set (see the module docstring); returns the paths.

    Raises:
        OutputExistsError: a final name exists (or was claimed meanwhile) and ``overwrite`` is False.
        OutputPathError: a final name is not a regular file.
        OutputWriteError: the data could not be written (disk full, ...).
    """
    if not items:
        return []
    folders = {p.parent for p, _ in items}
    temps: list[Path] = []
    claimed: list[Path] = []
    try:
        for folder in folders:
            folder.mkdir(parents=True, exist_ok=True)
            remove_stale_temps(folder)
        for path, data in items:
            tmp = _temp_name(path)
            fd = os.open(tmp, _CREATE_FLAGS, 0o644)
            temps.append(tmp)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        for (path, _), tmp in zip(items, temps, strict=True):
            if overwrite:
                if path.exists() and not path.is_file():
                    raise OutputPathError(f"{what} {path} is not a regular file; choose a file name")
                os.replace(tmp, path)
            else:
                _claim(tmp, path)
            claimed.append(path)
        for folder in folders:
            _fsync_dir(folder)
    except FileExistsError as exc:
        _rollback(claimed, overwrite)
        raise OutputExistsError(
            f"{what} {Path(exc.filename or items[len(claimed)][0]).name} already exists "
            "(another run may have written it; use --overwrite to replace it)"
        ) from exc
    except OSError as exc:
        _rollback(claimed, overwrite)
        folder_names = ", ".join(sorted(str(f) for f in folders))
        raise OutputWriteError(f"cannot write the {what} to {folder_names}: {exc.strerror or exc}") from exc
    except BaseException:
        _rollback(claimed, overwrite)
        raise
    finally:
        for tmp in temps:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    return [p for p, _ in items]


def _rollback(claimed: list[Path], overwrite: bool) -> None:
    """Remove the names this call claimed (with overwrite the old files are gone already: the new
    ones stay, each complete)."""
    if overwrite:
        return
    for path in claimed:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


__all__ = [
    "OutputExistsError",
    "OutputPathError",
    "OutputWriteError",
    "check_output_path",
    "check_writable_folder",
    "file_identity",
    "input_identities",
    "remove_stale_temps",
    "write_file_set",
]


def replace_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through ``path.tmp-<pid>`` in the same folder, fsync, rename: for a
    file the program owns and rewrites (a batch summary), never for user outputs, which are claimed
    with :func:`write_file_set` so that nothing is replaced silently."""
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
