"""Identity key files on disk: atomic 0600 writes and strict loading."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from l2session.crypto.rng import SeededRandom
from l2session.errors import (
    KeyFileError,
    KeyFileFormatError,
    KeyFilePermissionError,
    WrongPassphrase,
)
from l2session.identity.identity import Identity
from l2session.identity.keyfile import MAX_KEYFILE_SIZE
from l2session.store.keyfile import default_identity_path, load_identity, save_identity

FAST_N = 2**10
PASSPHRASE = "hunter2 but longer"


def alice() -> Identity:
    return Identity.generate(SeededRandom("alice"))


def bob() -> Identity:
    return Identity.generate(SeededRandom("bob"))


def save(
    path: Path,
    identity: Identity | None = None,
    *,
    passphrase: str | None = None,
    overwrite: bool = False,
) -> None:
    save_identity(
        path,
        identity or alice(),
        passphrase=passphrase,
        rng=SeededRandom("io"),
        overwrite=overwrite,
        scrypt_n=FAST_N,
    )


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def same_identity(a: Identity, b: Identity) -> bool:
    return (
        a.did == b.did
        and a.signing.seed() == b.signing.seed()
        and a.agreement.private_bytes() == b.agreement.private_bytes()
    )


@pytest.fixture
def umask_zero() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


# --------------------------------------------------------------------------
# Saving


@pytest.mark.parametrize("passphrase", [None, PASSPHRASE])
def test_roundtrip(tmp_path: Path, passphrase: str | None) -> None:
    path = tmp_path / "identity.json"
    save(path, passphrase=passphrase)
    assert same_identity(load_identity(path, passphrase=passphrase), alice())
    assert same_identity(load_identity(str(path), passphrase=passphrase), alice())


@pytest.mark.parametrize("umask", [0, 0o022, 0o277])
def test_saved_file_is_0600_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    path = tmp_path / "identity.json"
    old = os.umask(umask)
    try:
        save(path)
    finally:
        os.umask(old)
    assert mode_of(path) == 0o600
    assert stat.S_ISREG(os.lstat(path).st_mode)


def test_missing_parent_directories_created_0700(tmp_path: Path, umask_zero: None) -> None:
    path = tmp_path / "a" / "b" / "c" / "identity.json"
    save(path)
    for directory in (tmp_path / "a", tmp_path / "a" / "b", tmp_path / "a" / "b" / "c"):
        assert mode_of(directory) == 0o700
    assert same_identity(load_identity(path, passphrase=None), alice())


def test_existing_parent_directory_mode_untouched(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    save(tmp_path / "identity.json")
    assert mode_of(tmp_path) == 0o755


def test_parent_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(KeyFileError, match="cannot save"):
        save(tmp_path / "file" / "identity.json")


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "identity.json"
    save(path)
    before = path.read_bytes()
    with pytest.raises(KeyFileError, match="already exists") as info:
        save(path, bob())
    assert str(path) in str(info.value)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["identity.json"]


def test_overwrite_when_asked(tmp_path: Path) -> None:
    path = tmp_path / "identity.json"
    save(path)
    save(path, bob(), overwrite=True, passphrase=PASSPHRASE)
    assert same_identity(load_identity(path, passphrase=PASSPHRASE), bob())
    assert mode_of(path) == 0o600
    assert os.listdir(tmp_path) == ["identity.json"]


def test_refuses_to_save_over_a_directory(tmp_path: Path) -> None:
    path = tmp_path / "identity.json"
    path.mkdir()
    with pytest.raises(KeyFileError, match="is a directory"):
        save(path, overwrite=True)


def test_no_temporary_files_left_behind(tmp_path: Path) -> None:
    save(tmp_path / "one.json")
    save(tmp_path / "two.json", passphrase=PASSPHRASE)
    save(tmp_path / "two.json", bob(), overwrite=True)
    assert sorted(os.listdir(tmp_path)) == ["one.json", "two.json"]


def test_failed_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_fsync(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(KeyFileError, match="Input/output error"):
        save(tmp_path / "identity.json")
    assert os.listdir(tmp_path) == []


def test_failed_overwrite_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "identity.json"
    save(path)
    before = path.read_bytes()

    def broken_replace(src: object, dst: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(KeyFileError, match="No space left"):
        save(path, bob(), overwrite=True)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["identity.json"]


def test_without_hard_links_falls_back_to_replace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_link(src: object, dst: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_link)
    path = tmp_path / "identity.json"
    save(path)
    assert same_identity(load_identity(path, passphrase=None), alice())
    assert os.listdir(tmp_path) == ["identity.json"]
    with pytest.raises(KeyFileError, match="already exists"):
        save(path, bob())


def test_file_created_concurrently_is_not_clobbered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "identity.json"
    real_link = os.link

    def racing_link(src: str, dst: str) -> None:
        Path(dst).write_text("someone else's identity")
        real_link(src, dst)

    monkeypatch.setattr(os, "link", racing_link)
    with pytest.raises(KeyFileError, match="already exists"):
        save(path)
    assert path.read_text() == "someone else's identity"
    assert os.listdir(tmp_path) == ["identity.json"]


# --------------------------------------------------------------------------
# Loading


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.json"
    with pytest.raises(KeyFileError, match="no identity file") as info:
        load_identity(path, passphrase=None)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o040, 0o020, 0o010, 0o004, 0o002, 0o001])
def test_refuses_group_or_other_permissions(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "identity.json"
    save(path)
    path.chmod(0o600 | mode)
    with pytest.raises(KeyFilePermissionError) as info:
        load_identity(path, passphrase=None)
    message = str(info.value)
    assert f"has mode {0o600 | mode:04o}" in message
    assert "must be 0600" in message
    assert f"Fix: chmod 600 {path}" in message


def test_owner_read_only_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "identity.json"
    save(path)
    path.chmod(0o400)
    assert same_identity(load_identity(path, passphrase=None), alice())


def test_refuses_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real.json"
    save(real)
    link = tmp_path / "identity.json"
    link.symlink_to(real)
    with pytest.raises(KeyFilePermissionError, match="symbolic link") as info:
        load_identity(link, passphrase=None)
    assert str(link) in str(info.value)


def test_refuses_directory(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="not a regular file"):
        load_identity(tmp_path, passphrase=None)


def test_refuses_named_pipe(tmp_path: Path) -> None:
    fifo = tmp_path / "identity.json"
    os.mkfifo(fifo, 0o600)
    with pytest.raises(KeyFileError, match="named pipe"):
        load_identity(fifo, passphrase=None)


def test_refuses_oversized_file(tmp_path: Path) -> None:
    path = tmp_path / "identity.json"
    path.write_bytes(b" " * (MAX_KEYFILE_SIZE + 1))
    path.chmod(0o600)
    with pytest.raises(KeyFileFormatError, match="at most") as info:
        load_identity(path, passphrase=None)
    assert str(path) in str(info.value)


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_refuses_file_owned_by_someone_else(tmp_path: Path) -> None:
    path = tmp_path / "identity.json"
    save(path)
    os.chown(path, 12345, -1)
    with pytest.raises(KeyFilePermissionError, match="owned by uid 12345"):
        load_identity(path, passphrase=None)


def test_errors_from_the_format_name_the_path(tmp_path: Path) -> None:
    path = tmp_path / "identity.json"
    save(path, passphrase=PASSPHRASE)
    with pytest.raises(WrongPassphrase) as info:
        load_identity(path, passphrase="not it")
    assert str(path) in str(info.value)

    garbage = tmp_path / "garbage.json"
    garbage.write_bytes(b"{not json")
    garbage.chmod(0o600)
    with pytest.raises(KeyFileFormatError, match="not valid JSON") as info2:
        load_identity(garbage, passphrase=None)
    assert str(garbage) in str(info2.value)


# --------------------------------------------------------------------------
# Default location


def test_default_path_uses_xdg_data_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", "/srv/data")
    assert default_identity_path() == Path("/srv/data/l2session/identity.json")


@pytest.mark.parametrize("xdg", [None, "", "relative/data"])
def test_default_path_falls_back_to_home(monkeypatch: pytest.MonkeyPatch, xdg: str | None) -> None:
    if xdg is None:
        monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    else:
        monkeypatch.setenv("XDG_DATA_HOME", xdg)
    monkeypatch.setenv("HOME", "/home/alice")
    assert default_identity_path() == Path("/home/alice/.local/share/l2session/identity.json")
