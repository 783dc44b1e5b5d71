"""Persistence.  Today: identity key files (atomic, mode 0600).  The SQLite
store (sessions, durable queue, audit trail) arrives with the delivery issue."""

from l2session.store.keyfile import default_identity_path, load_identity, save_identity

__all__ = ["default_identity_path", "load_identity", "save_identity"]
