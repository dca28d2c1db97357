"""The capability table: one row per optimizer, driving every test in test_zoo.py."""

from __future__ import annotations

import cases_core

ALL_CASES = [*cases_core.CASES]
