"""``l2session node --metrics``: the exporter's text, and a real Prometheus
server (Debian's ``prometheus`` package) scraping a running node, read back
through Prometheus's HTTP API.

The Prometheus test skips where the binary is missing; CI installs it and
sets ``L2S_REQUIRE_PROMETHEUS=1`` (.ci/run), which turns the skip into a
failure, as ``L2S_REQUIRE_CHAOS`` does for the namespace tests.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from .cli_support import RunningNode, cli

pytest.importorskip("prometheus_client")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return str(response.read().decode())


@pytest.fixture
def metered(tmp_path: Path) -> Iterator[tuple[RunningNode, RunningNode, str]]:
    port = free_port()
    b = RunningNode(tmp_path / "b", extra=("--metrics", f"127.0.0.1:{port}"))
    a = RunningNode(tmp_path / "a")
    try:
        sent = cli("send", "--home", str(a.home), b.did, "counted", "--to", b.address)
        assert sent.returncode == 0, sent.stderr
        yield a, b, f"127.0.0.1:{port}"
    finally:
        a.stop()
        b.stop()
    assert b.process.returncode == 0


def test_the_exporter_serves_conventional_names(
    metered: tuple[RunningNode, RunningNode, str],
) -> None:
    _, _, at = metered
    text = get(f"http://{at}/metrics")
    assert 'l2session_sessions{state="established"} 1.0' in text
    assert 'l2session_handshakes_total{result="established"} 1.0' in text
    assert 'l2session_messages_total{direction="received"} 1.0' in text
    for name in (
        "l2session_bytes_total",
        "l2session_packets_total",
        "l2session_rejected_packets_total",
        "l2session_admission_total",
        "l2session_queue_messages",
        "l2session_rtt_seconds_bucket",
        "l2session_store_commit_seconds_bucket",
    ):
        assert name in text, name


def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if found is None:
        if os.environ.get("L2S_REQUIRE_PROMETHEUS"):
            pytest.fail("L2S_REQUIRE_PROMETHEUS is set but the prometheus binary is missing")
        pytest.skip("Debian's prometheus package is not installed (CI installs it)")
    return found


def test_a_real_prometheus_scrapes_the_node(
    metered: tuple[RunningNode, RunningNode, str], tmp_path: Path
) -> None:
    binary = prometheus_binary()
    _, _, target = metered
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        "scrape_configs:\n  - job_name: l2session\n    static_configs:\n"
        f"      - targets: ['{target}']\n"
    )
    web = f"127.0.0.1:{free_port()}"
    log = (tmp_path / "prometheus.log").open("w")
    server = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address={web}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        query = urllib.parse.quote('l2session_sessions{state="established"}')
        deadline = time.monotonic() + 60
        value = None
        while time.monotonic() < deadline and value is None:
            time.sleep(0.5)
            assert server.poll() is None, (tmp_path / "prometheus.log").read_text()[-3000:]
            try:
                answer = json.loads(get(f"http://{web}/api/v1/query?query={query}"))
            except OSError:
                continue  # not listening yet
            results = answer["data"]["result"]
            if results:
                value = results[0]["value"][1]
        assert value == "1", (tmp_path / "prometheus.log").read_text()[-3000:]
        job = results[0]["metric"]
        assert (job["job"], job["instance"]) == ("l2session", target)
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
