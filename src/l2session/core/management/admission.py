"""Admission control: how much handshake work a source can make us do.

An INIT costs the responder about a millisecond of asymmetric crypto
(signature verification, four X25519, ML-KEM decapsulation and
encapsulation, a signature) and, when it verifies, a session object; a
RESUME costs X25519 and a MAC; a BUNDLE_REQUEST is answered with a packet
twice its size.  All of it runs on the event loop that also serves the
established sessions.  Without a limit, one address sending INITs from
fresh DIDs (each a new did:key, so the (DID, address) quarantine never
sees the same DID twice) could buy all of that loop.  So every
*handshake-opening* packet (INIT, RESUME, BUNDLE_REQUEST: the packets an
unknown source can send) is admitted here before any crypto is spent or
any state is allocated for it:

1. **Host quarantine.**  A host that failed too often is refused outright
   for ``admission_quarantine`` seconds (``rejections["quarantined"]``).
2. **Per-host token bucket** (``admission_host_rate`` per second, burst
   ``admission_host_burst``): one flooder drains only its own share
   (``rejections["rate_limited"]``).
3. **Global token bucket** for sources we do not know
   (``admission_global_rate``, burst ``admission_global_burst``): bounds the
   crypto all unknown sources together can buy, so many flooding hosts
   cannot take the loop either (``rejections["rate_limited_global"]``).  A
   *known* source -- an INIT claiming the DID of a session that was
   established at exactly that address, or a RESUME with one of our
   tickets -- skips this bucket, so a flood from elsewhere does not lock
   our real peers out of re-keying.
4. **Global CPU budget** for sources we do not know
   (``admission_cpu_share`` of one core, burst ``admission_cpu_burst``
   seconds of CPU; ``rejections["cpu_budget"]``).  What a handshake costs
   is measured, not assumed: the manager charges the time each admitted
   opening packet from a stranger actually took on its clock
   (:meth:`AdmissionControl.charge`), so an honest burst of new peers is
   admitted as fast as the node can do handshakes, up to the share, and a
   flood of expensive INITs from many hosts can never take more than the
   share.  The packet bucket of 3. stays as a coarse bound on the cheap
   packets (a refused BUNDLE_REQUEST costs microseconds).  The bucket may
   go into debt by the last packet's cost; nothing is admitted until the
   debt is paid back.
5. **Failures.**  Every opening packet that fails (a bad signature, an
   undecodable handshake, a stale or replayed one) and every packet the
   host's bucket refused counts against the host; ``admission_failure_limit``
   of them within one ``admission_failure_window`` (a fixed window that
   starts at the first failure) quarantine the host.

The key is the *host*, not the address: one machine can use any number of
source ports.  IPv4 is keyed by its address, IPv6 by its /64 prefix (one
subscriber is normally given a whole /64, so per-address keys would let it
cycle through 2**64 of them), an IPv4-mapped IPv6 address as its IPv4
address.  An address that is not ``IP:port`` (the simulation's node names)
is its own key.

Memory is bounded: at most ``admission_max_hosts`` hosts have a bucket
(least recently seen evicted first: an evicted host comes back with a full
burst, which the global bucket still bounds) and at most as many are
quarantined (oldest evicted first), so an attacker cycling source
addresses cannot grow either table.

Established sessions never pass through here: DATA (and handshake replies
routed by session id) are never charged or refused, so a quarantined host's
existing sessions keep working; only new handshakes from it wait.

:class:`HostRateLimiter` is the per-host bucket table alone, for callers
above the core that only need a rate (a transport limiting new connections
per host).

Pure and sans-I/O: ``now`` is passed in (the manager's clock).
"""

from __future__ import annotations

import ipaddress
import logging
import math
from collections import OrderedDict
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Final

from l2session.errors import ConfigError

if TYPE_CHECKING:
    from l2session.core.config import SessionConfig

_log = logging.getLogger("l2session.session")

#: Reasons a packet is refused here (keys of ``SessionManager.rejections``).
QUARANTINED: Final = "quarantined"
RATE_LIMITED: Final = "rate_limited"
RATE_LIMITED_GLOBAL: Final = "rate_limited_global"
CPU_BUDGET: Final = "cpu_budget"

#: IPv6 sources are keyed by this prefix length (one subscriber's network).
IPV6_PREFIX: Final = 64

#: Tokens are compared with this tolerance.  ``now`` is seconds since the
#: epoch as a double, whose resolution near 2027 is about 0.24 µs; at the
#: highest sensible rates that rounds a refill by a few millionths of a
#: token either way, and a refill of exactly one token must count as one.
#: A packet taken within the tolerance leaves the bucket slightly negative,
#: so no tokens are gained over time.
_TOLERANCE: Final = 1e-3
#: The same for the CPU bucket, whose tokens are seconds: a nanosecond.
_CPU_TOLERANCE: Final = 1e-9


def host_of(address: str) -> str:
    """The admission key of a transport address: ``"203.0.113.7:4000"`` ->
    ``"203.0.113.7"``, ``"[2001:db8:1:2::9]:4000"`` -> ``"2001:db8:1:2::/64"``,
    ``"[::ffff:192.0.2.1]:4000"`` -> ``"192.0.2.1"``; anything else is its
    own key.  Cheap for IPv4 (a string split): it runs for every opening
    packet, including the flood it is there to refuse."""
    if address.startswith("["):
        end = address.find("]")
        if end < 0:
            return address
        try:
            ip = ipaddress.IPv6Address(address[1:end].split("%", 1)[0])
        except ValueError:
            return address
        mapped = ip.ipv4_mapped
        if mapped is not None:
            return str(mapped)
        network = ipaddress.IPv6Network((int(ip), IPV6_PREFIX), strict=False)
        return str(network)
    host, sep, port = address.rpartition(":")
    if not sep or not host or ":" in host or not port.isdigit():
        return address
    return host


@dataclass(slots=True)
class AdmissionStats:
    """What admission control did.  Each opening packet that is charged
    counts in exactly one of the first five (one that cannot even be parsed
    is never charged, only counted in ``failures``); ``failures`` counts
    those that failed, plus those the host's bucket refused (what
    quarantines)."""

    admitted: int = 0
    rate_limited: int = 0
    rate_limited_global: int = 0
    cpu_budget: int = 0
    quarantined: int = 0
    failures: int = 0
    #: Times a host was put in quarantine.
    hosts_quarantined: int = 0
    #: Host entries dropped at ``admission_max_hosts`` (least recently seen).
    hosts_evicted: int = 0
    #: Microseconds of handshake work charged to the CPU budget.
    cpu_charged_us: int = 0


class TokenBucket:
    """A token bucket; ``take`` refills by the time passed (at ``rate`` per
    second, up to ``burst``), then spends one token if there is one."""

    __slots__ = ("last", "tokens")

    def __init__(self, tokens: float, now: float) -> None:
        self.tokens, self.last = tokens, now

    def take(self, rate: float, burst: float, now: float) -> bool:
        elapsed = max(0.0, now - self.last)  # a clock stepping back refills nothing
        self.tokens = min(burst, self.tokens + elapsed * rate)
        self.last = max(self.last, now)
        if self.tokens >= 1.0 - _TOLERANCE:
            self.tokens -= 1.0
            return True
        return False

    def has_credit(self, rate: float, burst: float, now: float) -> bool:
        """Refill like :meth:`take`; True while the bucket is not in debt
        (the caller charges the real cost afterwards)."""
        elapsed = max(0.0, now - self.last)
        self.tokens = min(burst, self.tokens + elapsed * rate)
        self.last = max(self.last, now)
        return self.tokens > _CPU_TOLERANCE


class _Host:
    """One host: its bucket and its failures in the current window."""

    __slots__ = ("bucket", "failures", "window_start")

    def __init__(self, burst: float, now: float) -> None:
        self.bucket = TokenBucket(burst, now)
        self.failures = 0
        self.window_start = now


class AdmissionControl:
    """Per-host and global budgets for handshake-opening packets, and the
    host quarantine (see the module docstring).  Limits come from
    ``config`` (the manager's :class:`SessionConfig`)."""

    def __init__(self, config: SessionConfig) -> None:
        self.config = config
        self.stats = AdmissionStats()
        self._hosts: OrderedDict[str, _Host] = OrderedDict()
        self._quarantine: OrderedDict[str, float] = OrderedDict()
        self._global: TokenBucket | None = None
        self._cpu: TokenBucket | None = None
        #: The last admitted packet is a stranger's: charge() bills it.
        self._billing = False

    @property
    def tracked_hosts(self) -> int:
        """Hosts with a bucket now (at most ``admission_max_hosts``)."""
        return len(self._hosts)

    @property
    def quarantined_hosts(self) -> int:
        """Hosts in the quarantine table (some may have expired unseen)."""
        return len(self._quarantine)

    def is_tracked(self, address: str) -> bool:
        return host_of(address) in self._hosts

    def quarantined_until(self, address: str, now: float) -> float:
        """When the host of ``address`` may open handshakes again (0.0: it
        may now).  An expired entry is dropped here."""
        return self._quarantined_until(host_of(address), now)

    def _quarantined_until(self, host: str, now: float) -> float:
        until = self._quarantine.get(host, 0.0)
        if until and until <= now:
            del self._quarantine[host]
            return 0.0
        return until

    def refuse_quarantined(self, address: str, now: float) -> str | None:
        """:data:`QUARANTINED` (counted) if the host of ``address`` is in
        quarantine, else None: the first check on an opening packet, before
        it is even parsed."""
        if self._quarantine and self._quarantined_until(host_of(address), now) > now:
            self.stats.quarantined += 1
            return QUARANTINED
        return None

    def admit(self, address: str, now: float, *, known: bool = False) -> str | None:
        """Charge one opening packet from ``address``: None if it may go on
        to its crypto, else the reason it is refused (no token is spent by a
        refused packet beyond the bucket that refused it).  ``known``: the
        packet comes from a peer we have a session or a ticket with, so the
        global bucket does not apply (its host bucket still does)."""
        config, stats = self.config, self.stats
        self._billing = False
        host = host_of(address)
        if self._quarantine and self._quarantined_until(host, now) > now:
            stats.quarantined += 1
            return QUARANTINED
        entry = self._touch(host, now)
        if not entry.bucket.take(config.admission_host_rate, config.admission_host_burst, now):
            stats.rate_limited += 1
            self._fail(host, entry, now)
            return RATE_LIMITED
        if not known:
            bucket = self._global
            if bucket is None:
                bucket = self._global = TokenBucket(config.admission_global_burst, now)
            if not bucket.take(config.admission_global_rate, config.admission_global_burst, now):
                # Not the host's fault alone (many hosts share this budget):
                # it does not count towards the host's quarantine.
                stats.rate_limited_global += 1
                return RATE_LIMITED_GLOBAL
            cpu = self._cpu
            if cpu is None:
                cpu = self._cpu = TokenBucket(config.admission_cpu_burst, now)
            if not cpu.has_credit(config.admission_cpu_share, config.admission_cpu_burst, now):
                stats.cpu_budget += 1
                return CPU_BUDGET
            self._billing = True
        stats.admitted += 1
        return None

    def charge(self, seconds: float) -> None:
        """The packet admitted last took ``seconds`` of work: bill it to the
        CPU budget if it came from a stranger (see the module docstring).
        A negative or non-finite measurement (a clock step) bills nothing."""
        if not self._billing:
            return
        self._billing = False
        cpu = self._cpu
        if cpu is not None and math.isfinite(seconds) and seconds > 0:
            cpu.tokens -= seconds
            self.stats.cpu_charged_us += int(seconds * 1e6)

    def failure(self, address: str, now: float) -> None:
        """An admitted opening packet from ``address`` failed (bad
        signature, undecodable, stale, replayed, unknown prekey ...)."""
        host = host_of(address)
        self._fail(host, self._touch(host, now), now)

    def _touch(self, host: str, now: float) -> _Host:
        hosts = self._hosts
        entry = hosts.get(host)
        if entry is not None:
            hosts.move_to_end(host)
            return entry
        entry = hosts[host] = _Host(self.config.admission_host_burst, now)
        limit = self.config.admission_max_hosts
        while len(hosts) > limit:  # runs at most once: one entry was added
            hosts.popitem(last=False)
            self.stats.hosts_evicted += 1
        return entry

    def _fail(self, host: str, entry: _Host, now: float) -> None:
        config = self.config
        self.stats.failures += 1
        if entry.failures == 0 or now - entry.window_start >= config.admission_failure_window:
            entry.failures, entry.window_start = 0, now
        entry.failures += 1
        if entry.failures >= config.admission_failure_limit:
            entry.failures = 0
            self._quarantine_host(host, now)

    def _quarantine_host(self, host: str, now: float) -> None:
        config = self.config
        table = self._quarantine
        table.pop(host, None)
        table[host] = now + config.admission_quarantine
        while len(table) > config.admission_max_hosts:  # at most once
            table.popitem(last=False)
        self.stats.hosts_quarantined += 1
        _log.warning(
            "host %s quarantined for %.0f s: %d failed or excess handshake packets within %.0f s",
            host,
            config.admission_quarantine,
            config.admission_failure_limit,
            config.admission_failure_window,
        )

    def snapshot(self) -> dict[str, int]:
        """The counters and table sizes, for status output."""
        out = asdict(self.stats)
        out["tracked_hosts"] = len(self._hosts)
        out["quarantined_hosts"] = len(self._quarantine)
        return out


class HostRateLimiter:
    """Per-host token buckets in a bounded table (least recently seen
    evicted), keyed by :func:`host_of`: the same rule as admission control,
    for a caller that only needs a rate -- e.g. a transport refusing new
    connections from a host that opens too many (a QUIC handshake costs
    the server ~3 ms of asymmetric crypto before any session packet)."""

    def __init__(self, rate: float, burst: int, max_hosts: int) -> None:
        if not (rate > 0 and math.isfinite(rate)) or burst < 1 or max_hosts < 1:
            raise ConfigError(
                f"HostRateLimiter needs rate > 0, burst >= 1 and max_hosts >= 1, "
                f"got {rate!r}, {burst!r}, {max_hosts!r}"
            )
        self.rate, self.burst, self.max_hosts = rate, burst, max_hosts
        self._hosts: OrderedDict[str, TokenBucket] = OrderedDict()
        #: Calls refused so far.
        self.refused = 0

    def __len__(self) -> int:
        return len(self._hosts)

    def allow(self, address: str, now: float) -> bool:
        """Spend one token of the host of ``address``; False: refuse it."""
        host = host_of(address)
        hosts = self._hosts
        bucket = hosts.get(host)
        if bucket is None:
            bucket = hosts[host] = TokenBucket(self.burst, now)
            while len(hosts) > self.max_hosts:  # at most once
                hosts.popitem(last=False)
        else:
            hosts.move_to_end(host)
        if bucket.take(self.rate, self.burst, now):
            return True
        self.refused += 1
        return False
