"""Prometheus metrics of a running node (``l2session node --metrics
HOST:PORT``), served by ``prometheus-client`` (the ``metrics`` extra).

Names follow Prometheus conventions (``l2session_`` prefix, base units,
``_total`` for counters, ``_seconds`` and ``_bytes``).  Most figures are
read from the node when Prometheus scrapes (a custom collector: sessions by
state, rejections by reason, admission counters, packets and bytes each way,
queue depths); the rest are fed by the node as things happen: handshakes by
result, messages each way, store commit latency.  RTT is a histogram of the
heartbeat round trips, one sample per session whenever a new heartbeat
answer arrived since the last scrape.  The exporter's HTTP server runs in
prometheus-client's own thread and only reads plain numbers; the event
hooks run on the node's loop.  docs/NETWORK.md lists every metric.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from typing import Any

from l2session.core.events import StateChanged
from l2session.core.states import State, Trigger
from l2session.errors import ConfigError
from l2session.runtime.events import NodeEvent
from l2session.runtime.node import Node

#: How long a scrape waits for the node's loop (seconds).
SCRAPE_TIMEOUT = 5.0
#: RTT histogram buckets (seconds): loopback to intercontinental.
RTT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
#: Store commit latency buckets (seconds).
COMMIT_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)


def _import() -> Any:
    try:
        import prometheus_client
    except ImportError:
        raise ConfigError(
            "--metrics needs prometheus-client: pip install 'l2session[metrics]'"
        ) from None
    return prometheus_client


class NodeMetrics:
    """The registry of one node's metrics, and the hooks that feed it."""

    def __init__(self, node: Node) -> None:
        pc = _import()
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        self.node = node
        self.registry = pc.CollectorRegistry()
        self.handshakes = pc.Counter(
            "l2session_handshakes",
            "Session establishments by result (established, failed, authentication_failed)",
            ["result"],
            registry=self.registry,
        )
        self.rtt = pc.Histogram(
            "l2session_rtt_seconds",
            "Heartbeat round-trip time, one sample per new heartbeat answer per scrape",
            buckets=RTT_BUCKETS,
            registry=self.registry,
        )
        self.commit = pc.Histogram(
            "l2session_store_commit_seconds",
            "Time of a pump that committed the store (write-ahead, before packets leave)",
            buckets=COMMIT_BUCKETS,
            registry=self.registry,
        )
        self._rtt_seen: dict[str, float] = {}
        node.add_listener(self.on_event)
        node.commit_observer = self.commit.observe
        outer = self

        class Collector:
            def collect(self) -> Iterator[Any]:
                # Scrapes run in the exporter's thread; the node's tables
                # change on its event loop: read them there.
                return iter(outer.on_loop(GaugeMetricFamily, CounterMetricFamily))

        self.registry.register(Collector())

    def on_event(self, event: NodeEvent) -> None:
        if not isinstance(event, StateChanged):
            return
        record = event.record
        source, target = record.source, record.target
        if source in (State.HANDSHAKE_INITIATED, State.HANDSHAKE_RECEIVED):
            if target is State.ESTABLISHED:
                self.handshakes.labels("established").inc()
            elif target is State.FAILED:
                invalid = record.trigger is Trigger.INVALID_SIG
                self.handshakes.labels("authentication_failed" if invalid else "failed").inc()

    def on_loop(self, gauge: Any, counter: Any) -> list[Any]:
        loop = self.node.loop
        if loop is None or not self.node.running:
            return []
        done: concurrent.futures.Future[list[Any]] = concurrent.futures.Future()

        def read() -> None:
            try:
                done.set_result(list(self.collect(gauge, counter)))
            except BaseException as error:  # pragma: no cover - reported to the scrape
                done.set_exception(error)

        loop.call_soon_threadsafe(read)
        return done.result(timeout=SCRAPE_TIMEOUT)

    def collect(self, gauge: Any, counter: Any) -> Iterator[Any]:
        node = self.node
        if not node.running:
            return
        sessions = node.sessions()
        by_state = gauge("l2session_sessions", "Sessions by state", labels=["state"])
        counts = dict.fromkeys((s.value for s in State), 0)
        for handle in sessions:
            counts[handle.state.value] += 1
        for state, count in counts.items():
            by_state.add_metric([state], count)
        yield by_state
        rejected = counter(
            "l2session_rejected_packets", "Packets refused, by reason", labels=["reason"]
        )
        for reason, count in sorted(node.manager.rejections.items()):
            rejected.add_metric([reason], count)
        yield rejected
        admission = counter(
            "l2session_admission", "Admission control's decisions and tables", labels=["what"]
        )
        for what, count in sorted(node.manager.admission.snapshot().items()):
            admission.add_metric([what], count)
        yield admission
        total = node.traffic.total
        packets = counter("l2session_packets", "Packets each way", labels=["direction"])
        packets.add_metric(["received"], total.packets_in)
        packets.add_metric(["sent"], total.packets_out)
        yield packets
        octets = counter("l2session_bytes", "Bytes each way (on the wire)", labels=["direction"])
        octets.add_metric(["received"], total.bytes_in)
        octets.add_metric(["sent"], total.bytes_out)
        yield octets
        messages = counter(
            "l2session_messages",
            "Application messages each way (of the sessions the node holds now)",
            labels=["direction"],
        )
        messages.add_metric(["received"], sum(h.session.inbound.next_expected for h in sessions))
        messages.add_metric(["sent"], sum(h.session.outbound.next_seq for h in sessions))
        yield messages
        queued = gauge("l2session_queue_messages", "Messages waiting", labels=["queue"])
        queued.add_metric(["unacknowledged"], sum(h.queued for h in sessions))
        queued.add_metric(["unread"], sum(h.available for h in sessions))
        yield queued
        for handle in sessions:
            rtt = handle.session.rtt
            if rtt is not None and handle.session.hb_counter != self._rtt_seen.get(handle.peer_did):
                self._rtt_seen[handle.peer_did] = handle.session.hb_counter
                self.rtt.observe(rtt)


class Exporter:
    """The HTTP server thread of one node's metrics."""

    def __init__(self, server: Any, thread: Any) -> None:
        self._server = server
        self._thread = thread

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def serve_metrics(node: Node, host: str, port: int) -> Exporter:
    """Serve ``node``'s metrics on http://host:port/metrics."""
    pc = _import()
    metrics = NodeMetrics(node)
    try:
        server, thread = pc.start_http_server(port, addr=host, registry=metrics.registry)
    except OSError as error:
        raise ConfigError(f"--metrics {host}:{port}: cannot listen: {error.strerror}") from None
    return Exporter(server, thread)
