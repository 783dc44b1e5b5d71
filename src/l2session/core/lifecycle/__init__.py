"""What happens to a session over its life, one module per behaviour, each
talking to the session through a narrow ``typing.Protocol`` port defined
next to it (never importing :mod:`l2session.core.link.session`):
establishment and 0-RTT early data, liveness (heartbeats and timers),
resumption tickets, key rotation, the Membrane's screening, persistence.

Deliberately empty (see :mod:`l2session.core.link`)."""
