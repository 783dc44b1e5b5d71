"""``make demo`` (three real nodes on loopback) runs every act and shows
what it claims: the state changes are read from the demo's own output."""

from __future__ import annotations

import re
import subprocess
import sys


def test_network_demo_shows_every_act() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "l2session", "demo"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    out = result.stdout
    assert result.returncode == 0, out[-3000:] + result.stderr[-3000:]
    assert "demo complete" in out
    acts = re.split(r"^== ", out, flags=re.MULTILINE)
    assert len(acts) == 7, out
    establish, rotation, partition, fallback, restart, impostor = acts[1:]
    assert "alice->bob: handshake_initiated -> established  (PQXDH complete)" in establish
    assert "bob reads: 'hello Bob, this is Alice'" in establish
    assert re.search(r"key epoch 0 -> [1-9]", rotation)
    for state in ("degraded", "suspended"):
        assert re.search(rf"alice->bob: \w+ -> {state}", partition), partition
    assert "bob reads: 'written during the partition #3'" in partition
    assert "quic path to carol down" in fallback
    assert "carol reads over tcp: 'sent while UDP is blocked'" in fallback
    assert "alice->carol back on quic" in fallback
    assert "carol restored the session by resumption" in restart, restart
    assert "carol reads: 'sent while Carol was down'" in restart
    assert "(authentication_failed)" in impostor
    assert "refuses again at once" in impostor
    # The library's warnings are not interleaved with the story.
    assert "heartbeat" not in result.stderr
