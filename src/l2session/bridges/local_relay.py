"""A real Nostr relay (the ``nostr-relay`` PyPI server, in the nostr extra)
as a separate process on 127.0.0.1, started and stopped by the tests, the
benchmark and ``l2session demo``.

The relay keeps its events in an SQLite file, so a relay killed and started
again still has what it accepted, as a real relay would.  Signature checks
are the relay's by default; ``check_signatures=False`` lets forged events
through so the bridge's own checks can be shown.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

CONFIG = """\
DEBUG: false
storage:
  sqlalchemy.url: sqlite+aiosqlite:///{db}
  num_concurrent_reqs: 10
  num_concurrent_adds: 2
  validators:
{validators}
verification:
  nip05_verification: disabled
gunicorn:
  bind: 127.0.0.1:{port}
  workers: 1
  loglevel: warning
  reload: false
purple:
  host: 127.0.0.1
  port: {port}
  workers: 1
  disable_compression: true
authentication:
  enabled: false
message_timeout: 1800
subscription_limit: 32
max_limit: 10000
hellthread_limit: 100
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RelayProcess:
    """One relay server process (see module doc)."""

    def __init__(self, workdir: Path, *, check_signatures: bool = True) -> None:
        self.workdir = workdir
        self.port = free_port()
        validators = ["nostr_relay.validators.is_not_too_large"]
        if check_signatures:
            validators.append("nostr_relay.validators.is_signed")
        workdir.mkdir(parents=True, exist_ok=True)
        self.config = workdir / "relay.yaml"
        self.config.write_text(
            CONFIG.format(
                db=workdir / "relay.sqlite3",
                port=self.port,
                validators="\n".join(f"    - {v}" for v in validators),
            )
        )
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        exe = Path(sys.executable).with_name("nostr-relay")
        with (self.workdir / "relay.log").open("ab") as log:
            self.process = subprocess.Popen(  # noqa: S603 - our own relay binary
                [str(exe), "-c", str(self.config), "serve"],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the relay exited: see {self.workdir / 'relay.log'}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2),
            ):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the relay did not listen within {timeout} s")

    def kill(self) -> None:
        """SIGKILL the whole process group (gunicorn master and worker)."""
        process, self.process = self.process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
