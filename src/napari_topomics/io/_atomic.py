"""Small crash-safe filesystem operations: atomic file replace, directory swap, store lock.

``exchange`` swaps two directories in one step with Linux ``renameat2(RENAME_EXCHANGE)``;
where that is unavailable it returns ``False`` and callers fall back to two renames.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_exchange_supported: bool | None = None


def fsync_dir(path: Path) -> None:
    """Flush a directory entry change to disk (best effort; a no-op where unsupported)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_tree(path: Path) -> None:
    """Flush every file below ``path`` (and ``path`` itself) to disk."""
    if path.is_file():
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
        return
    for root, _, files in os.walk(path):
        for name in files:
            with open(os.path.join(root, name), "rb") as handle:
                os.fsync(handle.fileno())
        fsync_dir(Path(root))


def flush_to_disk(path: Path) -> None:
    """Flush everything written below ``path`` before it is renamed into place.

    One ``syncfs`` of ``path``'s filesystem on Linux (much faster than a ``fsync`` per
    file), otherwise :func:`fsync_tree`. Needed for power loss only: a killed process
    loses nothing that is already in the page cache.
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(path, os.O_RDONLY)
            try:
                if libc.syncfs(fd) == 0:
                    return
            finally:
                os.close(fd)
        except (OSError, AttributeError):
            pass
    fsync_tree(path)


def write_bytes_atomic(target: Path, data: bytes, scratch: Path) -> None:
    """Replace ``target`` by ``data`` in one step: write a temp file in ``scratch``, rename.

    ``scratch`` must be on the same filesystem as ``target``; a process killed at any
    point leaves either the old or the new ``target``, never a partial one.
    """
    scratch.mkdir(parents=True, exist_ok=True)
    temp = scratch / f"{target.name}.{os.getpid()}.{time.monotonic_ns()}.tmp"
    with open(temp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, target)
    fsync_dir(target.parent)


def exchange(a: Path, b: Path) -> bool:
    """Atomically swap two existing paths; ``False`` if the platform cannot."""
    global _exchange_supported
    if _exchange_supported is False or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        _exchange_supported = False
        return False
    renameat2.argtypes = [
        ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint
    ]
    result = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if result == 0:
        _exchange_supported = True
        fsync_dir(a.parent)
        fsync_dir(b.parent)
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        _exchange_supported = False
        return False
    raise OSError(err, os.strerror(err), str(a), None, str(b))


def move(src: Path, dst: Path) -> None:
    """Rename ``src`` to a ``dst`` that does not exist yet (same filesystem)."""
    if dst.exists():
        raise FileExistsError(errno.EEXIST, "destination exists", str(dst))
    dst.parent.mkdir(parents=True, exist_ok=True)
    os.rename(src, dst)
    fsync_dir(dst.parent)
    if src.parent != dst.parent:
        fsync_dir(src.parent)


def inode(path: Path) -> int | None:
    """The inode number of ``path`` (``None`` if it does not exist); renames keep it."""
    try:
        return os.stat(path, follow_symlinks=False).st_ino
    except FileNotFoundError:
        return None


@contextlib.contextmanager
def directory_lock(path: Path, timeout: float = 30.0) -> Iterator[None]:
    """Hold an exclusive advisory lock on directory ``path`` (``flock``; released on exit).

    The kernel drops the lock when the holder dies, so a killed writer never leaves a
    stale lock. Raises ``TimeoutError`` if another process holds it for ``timeout`` s.
    On platforms without ``fcntl`` the lock is a no-op.
    """
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{path} is locked by another process") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)
