"""Reading and writing identity key files on disk.

The format is :mod:`l2session.identity.keyfile`; this module adds what only a
file system can get wrong:

* **Writing is atomic.**  The bytes go to a fresh temporary file in the same
  directory (created ``O_EXCL`` with mode 0600, so the secret is never
  readable by others, not even for a moment), are flushed and fsynced, and
  the file is then moved into place and the directory fsynced.  A crash
  leaves either the old file or the new one, never half of one.  Without
  ``overwrite`` the move is a hard link, which fails atomically if the target
  appeared in the meantime: two processes creating an identity at once
  cannot silently lose one of them.
* **Permissions are enforced, not hoped for.**  The saved file is chmod-ed to
  0600 whatever the umask; directories we create are 0700.  Loading refuses a
  file that anyone but its owner can read or write, one owned by somebody
  else, a symlink (which could point to a file chosen by another user) and
  anything that is not a regular file, in the spirit of OpenSSH's
  ``StrictModes``: a key that others could have read is not a secret, and
  one that others could have written is not ours.
* **Size is bounded** before reading, so a wrong path cannot fill memory.

Every refusal is a :class:`~l2session.errors.KeyFileError` subclass naming
the path and, where the user can fix it, how.  POSIX only.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path
from typing import Final

from l2session.crypto.rng import RandomSource
from l2session.errors import ConfigError, KeyFileError, KeyFileFormatError, KeyFilePermissionError
from l2session.identity.identity import Identity
from l2session.identity.keyfile import (
    DEFAULT_SCRYPT_N,
    MAX_KEYFILE_SIZE,
    decode_identity,
    encode_identity,
)

FILE_MODE: Final = 0o600
DIR_MODE: Final = 0o700

_TEMP_ATTEMPTS: Final = 16
# Filesystems without hard links (vfat, some FUSE mounts) refuse os.link with
# one of these; we then fall back to check-then-replace.
_NO_LINK_ERRNOS: Final = frozenset(
    {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS, errno.EXDEV}
)
_DIR_FSYNC_UNSUPPORTED: Final = frozenset({errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP})


def default_identity_path() -> Path:
    """``$XDG_DATA_HOME/l2session/identity.json``, or
    ``~/.local/share/l2session/identity.json`` when ``XDG_DATA_HOME`` is unset,
    empty or relative (the XDG base directory spec says to ignore a relative
    value, which would depend on the working directory)."""
    xdg = os.environ.get("XDG_DATA_HOME", "")
    if xdg and os.path.isabs(xdg):
        base = Path(xdg)
    else:
        try:
            home = Path.home()
        except (RuntimeError, KeyError):
            home = Path()
        if not home.is_absolute():
            raise ConfigError(
                "cannot find the home directory for the default identity path; "
                "set HOME or XDG_DATA_HOME, or pass an explicit path"
            )
        base = home / ".local" / "share"
    return base / "l2session" / "identity.json"


# --------------------------------------------------------------------------
# Saving


def save_identity(
    path: str | os.PathLike[str],
    identity: Identity,
    *,
    passphrase: str | None,
    rng: RandomSource,
    overwrite: bool = False,
    scrypt_n: int = DEFAULT_SCRYPT_N,
) -> None:
    """Write ``identity`` to ``path`` atomically, mode 0600.

    Missing parent directories are created with mode 0700.  An existing file
    is replaced only with ``overwrite=True``: an identity file is a private
    key, and replacing one by accident loses that identity for good.
    ``rng`` supplies the salt and nonce (see
    :func:`~l2session.identity.keyfile.encode_identity`) and the temporary
    file's name.
    """
    target = Path(path)
    data = encode_identity(identity, passphrase=passphrase, rng=rng, scrypt_n=scrypt_n)
    try:
        _make_private_dirs(target.parent)
        _check_target(target, overwrite=overwrite)
        tmp = _write_temp(target, data, rng)
        placed = False
        try:
            if overwrite:
                os.replace(tmp, target)
                placed = True
            else:
                _link_no_clobber(tmp, target)
        finally:
            if not placed:
                _unlink_quietly(tmp)
        _fsync_dir(target.parent)
    except OSError as exc:
        raise KeyFileError(f"{target}: cannot save identity file: {_reason(exc)}") from None


def _make_private_dirs(directory: Path) -> None:
    """Create ``directory`` and missing ancestors, each with mode 0700.

    ``os.makedirs(mode=...)`` applies the mode to the last directory only
    (and subject to the umask), so we create them one by one.
    """
    missing: list[Path] = []
    current = directory
    while not os.path.lexists(current):
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for d in reversed(missing):
        try:
            os.mkdir(d, DIR_MODE)
        except FileExistsError:
            continue  # created concurrently; not ours to chmod
        os.chmod(d, DIR_MODE)
    if not directory.is_dir():
        raise KeyFileError(f"{directory}: cannot save identity file there: not a directory")


def _check_target(target: Path, *, overwrite: bool) -> None:
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        raise KeyFileError(f"{target} is a directory; cannot save an identity file there")
    if not overwrite:
        raise KeyFileError(
            f"{target} already exists; refusing to overwrite an identity file "
            "(that would lose the identity in it). Move it away first, or pass overwrite=True"
        )


def _write_temp(target: Path, data: bytes, rng: RandomSource) -> Path:
    """A new file next to ``target`` holding ``data``, fsynced, mode 0600."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(_TEMP_ATTEMPTS):
        tmp = target.with_name(f".{target.name}.{rng.random_bytes(6).hex()}.tmp")
        try:
            fd = os.open(tmp, flags, FILE_MODE)
        except FileExistsError:
            continue
        try:
            # The umask may have removed bits from FILE_MODE; set it exactly.
            os.fchmod(fd, FILE_MODE)
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            _unlink_quietly(tmp)
            raise
        os.close(fd)
        return tmp
    raise KeyFileError(f"{target}: cannot create a temporary file next to it (names all taken)")


def _link_no_clobber(tmp: Path, target: Path) -> None:
    """Put ``tmp`` at ``target`` unless something is already there."""
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise KeyFileError(
            f"{target} already exists (created while saving); refusing to overwrite it"
        ) from None
    except OSError as exc:
        if exc.errno not in _NO_LINK_ERRNOS:
            raise
        # No hard links here: fall back to check-then-replace.
        _check_target(target, overwrite=False)
        os.replace(tmp, target)


def _fsync_dir(directory: Path) -> None:
    """Make the rename durable: fsync the directory entry."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in _DIR_FSYNC_UNSUPPORTED:
            raise
    finally:
        os.close(fd)


def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


# --------------------------------------------------------------------------
# Loading


def load_identity(path: str | os.PathLike[str], *, passphrase: str | None) -> Identity:
    """Read and decode the identity file at ``path``.

    The file must be a regular file (not a symlink) owned by the current
    user, with no group or other permission bits, and at most
    :data:`~l2session.identity.keyfile.MAX_KEYFILE_SIZE` bytes.  The checks
    are repeated on the opened descriptor, so swapping the file between the
    check and the read does not get around them.
    """
    target = Path(path)
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        raise KeyFileError(
            f"{target}: no identity file there (check the path, or create an identity first)"
        ) from None
    except OSError as exc:
        raise KeyFileError(f"{target}: cannot access identity file: {_reason(exc)}") from None
    if stat.S_ISLNK(st.st_mode):
        raise KeyFilePermissionError(
            f"{target} is a symbolic link; identity files must be regular files "
            "(links are not followed). Fix: point to the real file instead"
        )
    _check_stat(target, st)
    try:
        fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        raise KeyFileError(f"{target}: cannot open identity file: {_reason(exc)}") from None
    try:
        opened = os.fstat(fd)
        if (opened.st_dev, opened.st_ino) != (st.st_dev, st.st_ino):
            raise KeyFileError(f"{target} was replaced while being opened; try again")
        _check_stat(target, opened)
        data = _read_bounded(fd)
    except OSError as exc:
        raise KeyFileError(f"{target}: cannot read identity file: {_reason(exc)}") from None
    finally:
        os.close(fd)
    if len(data) > MAX_KEYFILE_SIZE:
        raise _too_large(target, len(data))
    return decode_identity(data, passphrase=passphrase, source=str(target))


def owner_only_problem(st: os.stat_result) -> str | None:
    """Why a file holding secrets is not private to the current user:
    ``"mode"`` (group or others have access), ``"owner"`` (another uid owns
    it), or None.  Callers word the error for what the file is."""
    if stat.S_IMODE(st.st_mode) & 0o077:
        return "mode"
    if st.st_uid != os.geteuid():
        return "owner"
    return None


def _check_stat(target: Path, st: os.stat_result) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise KeyFileError(f"{target} is not a regular file ({_kind(st.st_mode)})")
    problem = owner_only_problem(st)
    mode, uid = stat.S_IMODE(st.st_mode), os.geteuid()
    if problem == "mode":
        raise KeyFilePermissionError(
            f"{target} has mode {mode:04o}; identity files must be 0600 "
            f"(owner read/write only). Fix: chmod 600 {target}"
        )
    if problem == "owner":
        raise KeyFilePermissionError(
            f"{target} is owned by uid {st.st_uid}, not by the current user (uid {uid}); "
            "identity files must belong to the user who uses them. "
            f"Fix: chown {uid} {target} (as root), or use your own identity file"
        )
    if st.st_size > MAX_KEYFILE_SIZE:
        raise _too_large(target, st.st_size)


def _read_bounded(fd: int) -> bytes:
    """Up to ``MAX_KEYFILE_SIZE + 1`` bytes: enough to tell "too large"."""
    chunks: list[bytes] = []
    remaining = MAX_KEYFILE_SIZE + 1
    while remaining > 0:
        chunk = os.read(fd, remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _too_large(target: Path, size: int) -> KeyFileFormatError:
    return KeyFileFormatError(
        f"{target} is {size} bytes; identity files are at most {MAX_KEYFILE_SIZE} bytes "
        "(is this the right file?)"
    )


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a file"


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


__all__ = ["default_identity_path", "load_identity", "save_identity"]
