"""Many sessions: :mod:`.manager` (routing, the timer heap, the outbox),
:mod:`.admission` (who may open a handshake), :mod:`.context` (the
capabilities a call runs with) and :mod:`.federated` (sessions with foreign
identities over a bridge).

Deliberately empty (see :mod:`l2session.core.link`)."""
