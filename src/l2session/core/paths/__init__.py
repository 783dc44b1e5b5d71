"""Where a session's packets go: :mod:`.multipath` (validated routes),
:mod:`.migration` (MIGRATE and path validation) and :mod:`.race` (happy
eyeballs across the node's paths during establishment).

Deliberately empty (see :mod:`l2session.core.link`)."""
