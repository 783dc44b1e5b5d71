"""A write that fails on a dead socket resets the connection, never raises.

uvloop raises ``RuntimeError`` from ``transport.write`` on a transport whose
socket closed before ``is_closing()`` turned true (seen by issue 23's hub
benchmark).  The flush runs from a loop callback, so an escaping exception
would only be logged by the loop, and the dead connection would stay
registered with packets queued on it; the flush must reset it instead.
"""

from __future__ import annotations

import asyncio

from l2session.transports.tcp import TcpTransport
from l2session.transports.tcp_connection import Connection


class _DeadSocketTransport(asyncio.Transport):
    """Says it is open, fails every write as uvloop does, records aborts."""

    def __init__(self) -> None:
        super().__init__()
        self.aborted = False

    def is_closing(self) -> bool:
        return False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        raise RuntimeError("unable to perform operation on <TCPTransport closed=True>")

    def abort(self) -> None:
        self.aborted = True


def test_a_failed_write_resets_the_connection_with_its_reason() -> None:
    async def main() -> tuple[Connection, _DeadSocketTransport, int]:
        owner = TcpTransport(listen=False)
        owner._loop = asyncio.get_running_loop()  # what start() sets; no socket needed
        connection = Connection(owner, "127.0.0.1:9", None)
        dead = _DeadSocketTransport()
        connection.transport = dead
        connection.queue = [b"one packet", b"another"]
        connection.flush()  # must not raise
        return connection, dead, owner.stats.packets_sent

    connection, dead, sent = asyncio.run(main())
    assert dead.aborted
    assert connection.reason is not None
    assert connection.reason.startswith("write failed")
    assert connection.queue == []
    assert sent == 0  # nothing counted as sent
