"""Persistence: the node database (SQLite, or in memory for tests) and
identity key files (atomic, mode 0600).  docs/STORE.md describes both."""

from l2session.store.files import default_store_path
from l2session.store.keyfile import default_identity_path, load_identity, save_identity
from l2session.store.memory import MemoryStore
from l2session.store.sqlite import SqliteStore

__all__ = [
    "MemoryStore",
    "SqliteStore",
    "default_identity_path",
    "default_store_path",
    "load_identity",
    "save_identity",
]
