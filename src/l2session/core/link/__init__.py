"""One session and its data path: :mod:`.session` (the object that routes),
:mod:`.channel` (the ratchet-sealed packets), :mod:`.delivery` (ordered,
exactly-once streams), :mod:`.envelope` (the Membrane's request framing) and
:mod:`.keyschedule` (every key derived from a handshake or a ticket).

Deliberately empty: a sub-package ``__init__`` that imported its modules
would make every import of a leaf (``link.keyschedule``) load ``session`` and
all behaviours, and close an import circle."""
