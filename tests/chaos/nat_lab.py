"""A small internet in network namespaces: two home networks, each behind
its own NAT (nftables masquerade), and an "internet" namespace where the
relays (and any public node) live.

::

    home_a (A) --lan-- nat_a --wan-- inet (relays, public nodes) --wan-- nat_b --lan-- home_b (B)

Addresses (``b`` = a per-run index, so parallel runs differ; only
10.217-10.219 are used): the internet's public address 10.217.b.1 (on its
loopback), home A's LAN 10.217.(b+50).0/24 (NAT .1, A .2), home B's LAN
10.217.(b+100).0/24, the NATs' WAN links 10.218.b.0/24 (A's) and
10.219.b.0/24 (B's), internet side .1, NAT side .2.

Each NAT masquerades what leaves its WAN and drops what arrives there
unless conntrack knows it (established/related), whether it is to be
forwarded or addressed to the NAT itself: a real NAT with filtering.
``symmetric=True`` masquerades with ``random`` (a new mapped port per
destination, where hole punching cannot work); otherwise Linux
keeps the source port (an endpoint-independent mapping).  Everything is
deleted on close, whatever happened.
"""

from __future__ import annotations

import itertools
import os
import subprocess
from typing import Final

from .chaos_lab import Namespaces, sh

NODES: Final = ("home_a", "nat_a", "inet", "nat_b", "home_b")


class NatLab(Namespaces):
    """The topology of the module docstring (a context manager)."""

    _serial = itertools.count()

    def __init__(self, *, symmetric_a: bool = False, symmetric_b: bool = False) -> None:
        tag = f"{os.getpid() % 100_000}n{next(self._serial)}"
        self.ns = {name: f"l2n{tag}{name.replace('_', '')}" for name in NODES}
        b = (os.getpid() + next(self._serial)) % 50
        self.public = f"10.217.{b}.1"
        self.host = {"home_a": f"10.217.{b + 50}.2", "home_b": f"10.217.{b + 100}.2"}
        self.nat_public = {"a": f"10.218.{b}.2", "b": f"10.219.{b}.2"}
        self._lan = {"a": f"10.217.{b + 50}", "b": f"10.217.{b + 100}"}
        self._wan = {"a": f"10.218.{b}", "b": f"10.219.{b}"}
        self.symmetric = {"a": symmetric_a, "b": symmetric_b}
        self._veth = 0

    def _build(self) -> None:
        sh("ip", "-n", self.ns["inet"], "addr", "add", f"{self.public}/32", "dev", "lo")
        # The internet routes between the two NATs' WAN links.
        sh(*self.prefix("inet"), "sysctl", "-qw", "net.ipv4.ip_forward=1")
        for side in ("a", "b"):
            self._home(side)

    def _link(self, left: str, right: str) -> tuple[str, str]:
        self._veth += 1
        tag = self.ns["inet"][3:].replace("inet", "")
        names = (f"l2w{tag}{self._veth}a", f"l2w{tag}{self._veth}b")
        self.veth(left, right, names)
        return names

    def _home(self, side: str) -> None:
        nat, home, inet = self.ns[f"nat_{side}"], self.ns[f"home_{side}"], self.ns["inet"]
        wan_inet, wan_nat = self._link("inet", f"nat_{side}")
        lan_nat, lan_home = self._link(f"nat_{side}", f"home_{side}")
        wan, lan = self._wan[side], self._lan[side]
        sh("ip", "-n", inet, "addr", "add", f"{wan}.1/24", "dev", wan_inet)
        sh("ip", "-n", nat, "addr", "add", f"{wan}.2/24", "dev", wan_nat)
        sh("ip", "-n", nat, "addr", "add", f"{lan}.1/24", "dev", lan_nat)
        sh("ip", "-n", home, "addr", "add", f"{lan}.2/24", "dev", lan_home)
        sh("ip", "-n", nat, "route", "add", "default", "via", f"{wan}.1")
        sh("ip", "-n", home, "route", "add", "default", "via", f"{lan}.1")
        sh("ip", "netns", "exec", nat, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        random = " random" if self.symmetric[side] else ""
        ruleset = (
            "table ip nat {\n"
            "  chain outbound { type nat hook postrouting priority srcnat; policy accept;\n"
            f'    oifname "{wan_nat}" counter masquerade{random}\n  }}\n'
            "  chain inbound { type filter hook forward priority filter; policy accept;\n"
            f'    iifname "{wan_nat}" ct state established,related accept\n'
            f'    iifname "{wan_nat}" counter drop\n  }}\n'
            # Unsolicited packets to the NAT itself are dropped too (before
            # conntrack confirms them: a confirmed inbound entry would make
            # the NAT pick another port for the host's answer).
            "  chain own { type filter hook input priority filter; policy accept;\n"
            f'    iifname "{wan_nat}" ct state established,related accept\n'
            f'    iifname "{wan_nat}" drop\n  }}\n'
            "}\n"
        )
        done = subprocess.run(
            [*self.prefix(f"nat_{side}"), "nft", "-f", "-"],
            input=ruleset,
            capture_output=True,
            text=True,
            timeout=30,
        )
        if done.returncode != 0:
            raise RuntimeError(f"nft refused the NAT of {side}: {done.stderr.strip()}")
