from __future__ import annotations

from pymirrord.cli import main

raise SystemExit(main())
