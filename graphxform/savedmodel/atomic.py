"""Atomic files: outputs are written to a temporary name beside the target, fsynced, and renamed into place.

A failure (an error, a kill, Ctrl-C, a full disk) never leaves a half-written output: the temporary files are
removed, and :func:`clean_stale` removes what a killed process left (``.<name>.tmp-<pid>-*``) or puts back
the previous output an interrupted replacement had moved aside (``.<name>.old-<pid>-*``). Files follow the
umask, as any tool's do.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from graphxform.core.errors import ExportError
from graphxform.core.testhooks import pause_point

log = logging.getLogger(__name__)


def tmp_prefix(out: Path, kind: str) -> str:
    """``.<name>.<kind>-<pid>-``: temporary names beside ``out`` that say whose they are."""
    return f".{out.name}.{kind}-{os.getpid()}-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def clean_stale(out: Path) -> list[Path]:
    """Remove what a killed export to ``out`` left beside it; returns what was cleaned.

    ``.<name>.tmp-<pid>-*`` (a half-written output) of a process that no
    longer runs is deleted. ``.<name>.old-<pid>-*`` (the previous output,
    moved aside by ``force``) is put back when ``out`` is missing — the
    process died between the two renames — and deleted otherwise.
    """
    cleaned: list[Path] = []
    parent = out.parent
    if not parent.is_dir():
        return cleaned
    pattern = re.compile(rf"^\.{re.escape(out.name)}\.(tmp|old)-(\d+)-[^/]*$")
    try:
        entries = sorted(parent.iterdir())
    except OSError:
        return cleaned
    for entry in entries:
        m = pattern.match(entry.name)
        if m is None or _pid_alive(int(m.group(2))):
            continue
        try:
            if m.group(1) == "old" and not (out.exists() or out.is_symlink()):
                os.rename(entry, out)
                log.warning("%s: restored the previous output that an interrupted export had moved aside", out)
            elif entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            cleaned.append(entry)
            log.info("removed %s, left by an interrupted export (process %s)", entry, m.group(2))
        except OSError as exc:  # pragma: no cover - best effort
            log.warning("could not clean %s: %s", entry, exc)
    return cleaned


def write_error(out: Path, exc: OSError) -> ExportError:
    """The one-line error for a failed write: what failed, and that nothing was left behind."""
    what = (exc.strerror or str(exc)).rstrip(".")
    where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
    return ExportError(f"{out}: could not be written: {what}{where}; nothing was written (the temporary files "
                       "were removed)")


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def umask() -> int:
    """The process's umask (read without changing it where the kernel tells it)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_bytes(path: Path, data: bytes | Iterable[bytes]) -> None:
    """Write ``data`` (bytes, or chunks of them) to ``path`` and fsync it."""
    with open(path, "wb") as f:
        if isinstance(data, (bytes, bytearray)):
            f.write(data)
        else:
            f.writelines(data)
        f.flush()
        os.fsync(f.fileno())


def copy_file(src: Path, dst: Path) -> None:
    shutil.copyfile(src, dst)
    fsync_file(dst)


def walk_dirs(root: Path) -> Iterator[Path]:
    yield root
    for p in sorted(root.rglob("*")):
        if p.is_dir():
            yield p


def move_into_place(tmp: Path, out: Path) -> None:
    """Rename ``tmp`` to ``out``; an existing ``out`` is renamed aside first and deleted after."""
    if not (out.exists() or out.is_symlink()):
        os.rename(tmp, out)
        fsync_dir(out.parent)
        return
    aside = Path(tempfile.mkdtemp(prefix=tmp_prefix(out, "old"), dir=out.parent))
    aside.rmdir()
    os.rename(out, aside)
    try:
        pause_point("export:swap")
        os.rename(tmp, out)
    except BaseException:
        os.rename(aside, out)
        raise
    fsync_dir(out.parent)
    if aside.is_dir() and not aside.is_symlink():
        shutil.rmtree(aside, ignore_errors=True)
    else:
        aside.unlink(missing_ok=True)


def new_dir(out: Path) -> Path:
    """A new empty directory beside ``out`` to write it in (removed by the caller on failure)."""
    tmp = Path(tempfile.mkdtemp(prefix=tmp_prefix(out, "tmp"), dir=out.parent))
    os.chmod(tmp, 0o777 & ~umask())  # mkdtemp makes it 0700: the output is for servers running as others
    return tmp


def new_file(out: Path, label: str = "") -> Path:
    """A new empty file beside ``out`` to write it in (removed by the caller on failure)."""
    fd, name = tempfile.mkstemp(prefix=tmp_prefix(out, "tmp") + label, dir=out.parent)
    os.close(fd)
    os.chmod(name, 0o666 & ~umask())  # mkstemp makes it 0600
    return Path(name)


__all__ = ["clean_stale", "copy_file", "fsync_dir", "fsync_file", "move_into_place", "new_dir", "new_file",
           "tmp_prefix", "umask", "walk_dirs", "write_bytes", "write_error"]
