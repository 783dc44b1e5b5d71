"""A node killed with SIGKILL and started again loses and duplicates nothing."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

from l2session.bridges.local_relay import RelayProcess

AGENT = Path(__file__).with_name("node_agent.py")


class Agent:
    def __init__(self, store: Path, relay: str, peer: str, send: int) -> None:
        env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[2] / "src"))
        self.process = subprocess.Popen(
            [sys.executable, str(AGENT), str(store), relay, peer, str(send)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        self.lines: list[str] = []

    async def line(self, prefix: str, timeout: float) -> str:
        loop = asyncio.get_running_loop()
        assert self.process.stdout is not None
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            raw = await asyncio.wait_for(
                loop.run_in_executor(None, self.process.stdout.readline),
                deadline - loop.time(),
            )
            if not raw:
                break
            text = raw.decode().rstrip("\n")
            self.lines.append(text)
            if text.startswith(prefix):
                return text
        raise TimeoutError(f"no {prefix!r} line from the node: {self.lines[-5:]}")

    def kill(self) -> None:
        if self.process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()

    def got(self) -> list[str]:
        return [line[4:] for line in self.lines if line.startswith("got ")]


def test_a_node_killed_and_restarted_loses_and_duplicates_nothing(
    relay: RelayProcess, tmp_path: Path
) -> None:
    from l2session.testing.nostr_client import PlainClient

    store = tmp_path / "node.db"

    agents: list[Agent] = []

    def start(send: int, peer: str) -> Agent:
        agents.append(Agent(store, relay.url, peer, send))
        return agents[-1]

    async def main() -> None:
        friend = PlainClient([relay.url])
        await friend.start()
        try:
            agent = start(300, friend.npub)
            node_npub = (await agent.line("ready", 30)).split()[1]
            await agent.line("queued", 30)
            await friend.wait_for(20, 30)
            agent.kill()  # mid-stream: part of the 300 is still queued
            for i in range(50):  # sent while the node is down
                assert await friend.send(node_npub, f"f {i}")
            agent = start(0, friend.npub)
            await agent.line("flushed", 60)
            await friend.wait_for(300, 60)
            texts = [m.text for m in friend.inbox]
            assert sorted(texts, key=lambda t: int(t.split()[1])) == [f"n {i}" for i in range(300)]
            for _ in range(50):
                if len(agent.got()) >= 50:
                    break
                await agent.line("got", 30)
            assert sorted(agent.got(), key=lambda t: int(t.split()[1])) == [
                f"f {i}" for i in range(50)
            ]
            agent.kill()
            agent = start(0, friend.npub)  # nothing again
            await agent.line("flushed", 60)
            assert await friend.send(node_npub, "last")
            await agent.line("got", 30)
            assert agent.got() == ["last"]
            agent.kill()
        finally:
            for each in agents:
                each.kill()  # a blocked readline returns: the loop can close
            await friend.stop()

    asyncio.run(main())
