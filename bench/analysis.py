"""What limits each figure that misses its target: from the profiles in docs/performance.md."""

from __future__ import annotations

LIMITS: dict[str, str] = {}
