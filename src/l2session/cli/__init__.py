"""The ``l2session`` command line (``python -m l2session``)."""
