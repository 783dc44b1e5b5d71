"""l2session: sovereign, post-quantum, resilient peer-to-peer sessions."""

__version__ = "0.1.0"
