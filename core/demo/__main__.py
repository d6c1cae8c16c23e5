"""``python -m core.demo``: serve the demo model (same flags as ``python -m core demo``)."""

from __future__ import annotations

import sys

from core.demo.server import main

if __name__ == "__main__":
    sys.exit(main())
