"""Confined file access (SPEC F16): open, write and append files inside a workspace without
following a symbolic link at any component, so a link swapped in between a check and a use
cannot lead outside.

The workspace root is opened as a directory descriptor and each component is opened relative to
its parent with `O_NOFOLLOW`; the file itself is checked on its open descriptor (`fstat`): a
regular file, not hard-linked elsewhere, not one of Podium's own files. Links are refused even
when they point inside the workspace — the simple rule that no concurrent swap can defeat.
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import secrets
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

from podium.errors import StepExecutionError

MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 4096
STATE_DIR = ".podium"
NEW_FILE_MODE = 0o644
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


def path_error(message: str) -> StepExecutionError:
    return StepExecutionError(message, retryable=False, error_type="path")


class Confinement:
    """The rules for one workspace: its root, Podium's protected paths (absolute), and whether
    Podium's own state may be touched (`podium_state`, the project's `[policy.files]`)."""

    def __init__(
        self, workspace: Path, protected: Iterable[Path] = (), *, podium_state: bool = False
    ) -> None:
        self.given = Path(os.path.abspath(workspace))
        self.root = workspace.resolve()
        self.podium_state = podium_state
        paths = [self.root / STATE_DIR, *protected] if not podium_state else []
        spellings = {Path(os.path.abspath(p)) for p in paths} | {p.resolve() for p in paths}
        # a protected folder holding the whole workspace would refuse everything: not ours
        self._protected = sorted(p for p in spellings if not self.root.is_relative_to(p))
        self._identities = {_identity(p) for p in self._protected} - {None}

    def parts(self, raw: str) -> tuple[str, ...]:
        """`raw` as components below the root, normalised lexically; refuse what climbs out,
        NUL bytes, over-long names, and Podium's own state by name."""
        _check_spelling(raw)
        relative = self._relative(raw)
        parts = tuple(p for p in relative.split("/") if p not in ("", "."))
        if not parts:
            raise path_error(f"path {raw!r} names the workspace itself; name a file inside it")
        if parts[0] == "..":
            raise path_error(
                f"path {raw!r} is outside the workspace {self.root}; file steps may only use "
                "paths inside the workspace"
            )
        self._refuse_protected_name(raw, self.root.joinpath(*parts))
        return parts

    def _relative(self, raw: str) -> str:
        if not raw.startswith("/"):
            return posixpath.normpath(raw)
        absolute = Path(posixpath.normpath(raw))
        for root in (self.root, self.given):
            if absolute.is_relative_to(root):
                return absolute.relative_to(root).as_posix()
        raise path_error(
            f"path {raw!r} is outside the workspace {self.root}; file steps may only use paths "
            "inside the workspace"
        )

    def _refuse_protected_name(self, raw: str, target: Path) -> None:
        for path in self._protected:
            if target == path or target.is_relative_to(path):
                raise _state_error(raw, path)

    def check_identity(self, raw: str, fd: int) -> os.stat_result:
        """The `fstat` of an opened descriptor; refuse it when it is one of Podium's files or
        folders, reached by another spelling or a hard link."""
        info = os.fstat(fd)
        if (info.st_dev, info.st_ino) in self._identities:
            raise _state_error(raw, None)
        return info

    @contextlib.contextmanager
    def parent(self, raw: str, parts: tuple[str, ...], *, create: bool) -> Iterator[int]:
        """A descriptor of the folder holding the last component, each folder on the way opened
        without following links (missing ones made when `create`)."""
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for index, name in enumerate(parts[:-1]):
                child = _open_dir(fd, name, raw, "/".join(parts[: index + 1]), create=create)
                os.close(fd)
                fd = child
                self.check_identity(raw, fd)
            yield fd
        finally:
            os.close(fd)


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def _state_error(raw: str, path: Path | None) -> StepExecutionError:
    what = f" ({path})" if path is not None else ""
    return path_error(
        f"path {raw!r} is Podium's own state{what}; file steps and tools do not touch the "
        "store, .podium/, the project configuration or the agents catalog — the project "
        "configuration may allow it ([policy.files] podium_state = true)"
    )


def _check_spelling(raw: str) -> None:
    if "\0" in raw:
        raise path_error(f"path {raw!r} contains a NUL byte; remove it")
    encoded = raw.encode("utf-8", "surrogateescape")
    if len(encoded) > MAX_PATH_BYTES:
        raise path_error(
            f"path {raw[:40]!r}… is {len(encoded)} bytes long; paths may be at most "
            f"{MAX_PATH_BYTES} bytes"
        )
    for name in encoded.split(b"/"):
        if len(name) > MAX_NAME_BYTES:
            raise path_error(
                f"path {raw[:60]!r}… has a component of {len(name)} bytes; names may be at "
                f"most {MAX_NAME_BYTES} bytes"
            )


def _link_error(raw: str, where: str) -> StepExecutionError:
    return path_error(
        f"path {raw!r} goes through a symbolic link ({where}); file steps do not follow links "
        "— use the real path"
    )


def _is_link(dir_fd: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.lstat(name, dir_fd=dir_fd).st_mode)
    except OSError:
        return False


def _open_dir(dir_fd: int, name: str, raw: str, where: str, *, create: bool) -> int:
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        if not create:
            raise
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) and _is_link(dir_fd, name):
            raise _link_error(raw, where) from None
        raise
    with contextlib.suppress(FileExistsError):
        os.mkdir(name, 0o777, dir_fd=dir_fd)
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) and _is_link(dir_fd, name):
            raise _link_error(raw, where) from None
        raise


def _open_file(
    box: Confinement, dir_fd: int, name: str, raw: str, flags: int, mode: int = NEW_FILE_MODE
) -> tuple[int, os.stat_result]:
    """Open the last component without following a link; refuse anything but a regular file
    that lives only here."""
    try:
        fd = os.open(name, flags | _FILE_FLAGS, mode, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP or (exc.errno == errno.ENOTDIR and _is_link(dir_fd, name)):
            raise _link_error(raw, raw) from None
        if exc.errno == errno.ENXIO:
            raise _special_error(raw) from None
        raise
    try:
        info = box.check_identity(raw, fd)
        _check_regular(raw, info)
    except BaseException:
        os.close(fd)
        raise
    return fd, info


def _special_error(raw: str) -> StepExecutionError:
    return path_error(
        f"path {raw!r} is not a regular file (a folder, FIFO, socket or device); file steps "
        "read and write regular files only"
    )


def _check_regular(raw: str, info: os.stat_result) -> None:
    if stat.S_ISDIR(info.st_mode):
        raise StepExecutionError(
            f"cannot use {raw!r}: it is a folder; name a file", retryable=False, error_type="io"
        )
    if not stat.S_ISREG(info.st_mode):
        raise _special_error(raw)
    if info.st_nlink > 1:
        raise path_error(
            f"path {raw!r} is hard-linked elsewhere ({info.st_nlink} links); file steps refuse "
            "files that may live outside the workspace — copy it instead of linking it"
        )


def read_bytes(box: Confinement, raw: str, limit: int) -> tuple[bytes, int]:
    """Up to `limit` bytes of the file, and its size (at least what was seen)."""
    parts = box.parts(raw)
    with box.parent(raw, parts, create=False) as dir_fd:
        fd, info = _open_file(box, dir_fd, parts[-1], raw, os.O_RDONLY)
        try:
            os.set_blocking(fd, True)
            data = _read_up_to(fd, limit)
            total = max(info.st_size, len(data) + len(_read_up_to(fd, 1)))
        finally:
            os.close(fd)
    return data, total


def _read_up_to(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    left = limit
    while left > 0:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def write_atomic(box: Confinement, raw: str, data: bytes) -> str:
    """Write a temp file next to the target, fsync it, rename it over the target, fsync the
    folder. Returns the path relative to the workspace."""
    parts = box.parts(raw)
    name = parts[-1]
    with box.parent(raw, parts, create=True) as dir_fd:
        mode = _existing_mode(box, dir_fd, name, raw)
        temp = f".{secrets.token_hex(8)}.podium.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        fd, _ = _open_file(box, dir_fd, temp, raw, flags, 0o600)
        try:
            try:
                _write_all(fd, data)
                os.fchmod(fd, mode)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp, dir_fd=dir_fd)
            raise
        os.fsync(dir_fd)
    return "/".join(parts)


def _existing_mode(box: Confinement, dir_fd: int, name: str, raw: str) -> int:
    """The mode of the file being replaced (checked like a read), or the new-file mode."""
    try:
        info = os.lstat(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return NEW_FILE_MODE
    if stat.S_ISLNK(info.st_mode):
        raise _link_error(raw, raw)
    fd, info = _open_file(box, dir_fd, name, raw, os.O_RDONLY)
    os.close(fd)
    return info.st_mode & 0o7777


def append(box: Confinement, raw: str, data: bytes) -> str:
    """Append to the file (created when missing); fsync. Returns the relative path."""
    parts = box.parts(raw)
    with box.parent(raw, parts, create=True) as dir_fd:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
        fd, _ = _open_file(box, dir_fd, parts[-1], raw, flags)
        try:
            os.set_blocking(fd, True)
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
    return "/".join(parts)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
