"""The capability table: one row per optimizer, driving every test in test_zoo.py."""

from __future__ import annotations

import cases_adaptive
import cases_core
import cases_wrappers

ALL_CASES = [*cases_core.CASES, *cases_adaptive.CASES, *cases_wrappers.CASES]
