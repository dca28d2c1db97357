"""The README's benchmark commands run end to end, on a tiny budget (speed itself is never
asserted: the figures are the benchmarks' to print, not a test's to time)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"
KERNELS = Path(__file__).parents[1] / "src" / "optzoo" / "optim" / "kernels"


def run(script, *args):
    return subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args], capture_output=True, text=True, check=True, timeout=600
    ).stdout


def test_step_speed_writes_its_tables(tmp_path):
    out = tmp_path / "speed"
    run("step_speed.py", "--size", "1", "--steps", "2", "--repeats", "1", "--only", "rmsprop,ranger", "--out", str(out))
    summary = json.loads(out.with_suffix(".json").read_text())
    ours = {row["contender"] for row in summary["rows"] if not row["peer"]}
    assert ours == {"optzoo RMSprop", "optzoo Ranger"}
    peers = {row["algorithm"] for row in summary["rows"] if row["peer"]}
    assert peers == {"rmsprop", "ranger"}, "every algorithm needs a peer to be compared with"
    assert all(row["ms"] > 0 and row["gb_s"] > 0 for row in summary["rows"])
    assert set(summary["cold_build_s"]) == {path.stem for path in KERNELS.glob("*.cpp")}
    assert "| rmsprop | **optzoo RMSprop** |" in out.with_suffix(".md").read_text()


def test_same_bytes_holds_each_kernel_against_a_fused_one(tmp_path):
    out = tmp_path / "same_bytes.md"
    run("same_bytes.py", "--size", "1", "--steps", "2", "--rounds", "1", "--out", str(out))
    rows = [line for line in out.read_text().splitlines() if line.startswith("| optzoo ")]
    assert len(rows) == 8
    assert all("x torch Adam fused" in row or "x torch Adagrad fused" in row for row in rows)
