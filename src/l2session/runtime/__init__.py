"""The thin layer that touches the operating system.

Today: OS randomness.  The asyncio node (one timer per node, fed by the
core's ``get_timer()``) arrives with the network issue.
"""

from l2session.runtime.entropy import SystemRandom

__all__ = ["SystemRandom"]
