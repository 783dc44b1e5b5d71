"""Regenerate the known-answer vectors in this directory.

Run only when the protocol changes on purpose (``make vectors``); the tests
require the checked-in files to be reproduced byte for byte.
"""

from __future__ import annotations

import json
from pathlib import Path

from l2session.testing.vectors import (
    kdf_vector,
    pqxdh_vector,
    relay_vector,
    session_vector,
    wire_vector,
)
from l2session.testing.vectors_ext import extensions_vector

HERE = Path(__file__).resolve().parent
FILES = {
    "pqxdh_kat.json": pqxdh_vector,
    "kdf_kat.json": kdf_vector,
    "wire_kat.json": wire_vector,
    "session_kat.json": session_vector,
    "extensions_kat.json": extensions_vector,
    "relay_kat.json": relay_vector,
}


def main() -> None:
    for name, build in FILES.items():
        path = HERE / name
        path.write_text(json.dumps(build(), indent=2) + "\n", encoding="utf-8")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
