"""``optzoo bench`` end to end, on a tiny budget."""

from __future__ import annotations

import importlib.util
import json

import pytest

from optzoo import cli, registry
from optzoo.lab.training import benchkit


@pytest.fixture
def optzoo_main(monkeypatch):
    """``optzoo.cli.main``, wired with the sub-commands whose modules exist (all of them once the lab is complete)."""
    available = {name: entry for name, entry in cli.COMMANDS.items() if importlib.util.find_spec(entry[0])}
    monkeypatch.setattr(cli, "COMMANDS", available)
    return cli.main


def test_bench_end_to_end(tmp_path, optzoo_main, capsys):
    out = tmp_path / "bench"
    code = optzoo_main([
        "bench", "--problem", "digits-logreg", "--optimizers", "sgd,momentum,adam", "--seeds", "2",
        "--epochs", "2", "--batch-size", "64", "--lr", "adam=0.01", "--workers", "2", "--no-progress",
        "--out", str(out),
    ])
    assert code == 0
    for name in ("results.jsonl", "summary.md", "curves.png", "final_val.png", "epoch_time.png"):
        assert (out / name).stat().st_size > 0, name
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 3 * 2 * 3  # optimizers x seeds x (epochs + the starting point)
    assert {(r["optimizer"], r["seed"]) for r in rows} == {(o, s) for o in ("sgd", "momentum", "adam") for s in (0, 1)}
    assert all(r["status"] == "ok" for r in rows)
    assert {r["lr"] for r in rows if r["optimizer"] == "adam"} == {0.01}
    summary = (out / "summary.md").read_text()
    assert summary.splitlines()[0] == "# Benchmark: digits-logreg"
    assert "optzoo bench --problem digits-logreg" in summary and "--lr adam=0.01" in summary
    for name in ("sgd", "momentum", "adam"):
        assert f"| {name} |" in summary
    for seed in (0, 1):
        assert (out / "checkpoints" / f"adam-seed{seed}" / "last.pt").exists()


@pytest.mark.parametrize(
    ("argv", "listed"),
    [
        (["--problem", "imagenet"], "digits-mlp"),
        (["--optimizers", "sgd,adamm"], "adam"),
        (["--lr", "adam"], "NAME=VALUE"),
        (["--lr", "nesterov=0.1"], "benchmarked"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(tmp_path, optzoo_main, capsys, monkeypatch, argv, listed):
    monkeypatch.setattr(benchkit, "run_jobs", lambda *a, **k: pytest.fail("work started"))
    code = optzoo_main(["bench", "--optimizers", "sgd,adam", *argv, "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and listed in err


def test_unknown_optimizer_lists_every_valid_name(tmp_path, optzoo_main, capsys):
    assert optzoo_main(["bench", "--optimizers", "nope", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert all(name in err for name in registry.optimizers())


def test_unwritable_output_is_an_error_before_any_work(tmp_path, optzoo_main, capsys, monkeypatch):
    monkeypatch.setattr(benchkit, "run_jobs", lambda *a, **k: pytest.fail("work started"))
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    code = optzoo_main(["bench", "--optimizers", "sgd", "--out", str(blocker / "out")])
    err = capsys.readouterr().err
    assert code != 0
    assert "cannot write to output directory" in err and str(blocker / "out") in err


def test_ctrl_c_leaves_the_finished_runs_readable(tmp_path, optzoo_main, capsys, monkeypatch):
    real = benchkit.run_job
    calls = []

    def interrupt_third(job):
        calls.append(job)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(job)

    monkeypatch.setattr(benchkit, "run_job", interrupt_third)
    out = tmp_path / "cut"
    code = optzoo_main(["bench", "--problem", "diabetes-linreg", "--optimizers", "sgd,adam", "--seeds", "2",
                        "--epochs", "2", "--workers", "1", "--no-progress", "--no-checkpoints", "--out", str(out)])
    assert code == 130
    rows = benchkit.read_results(out / "results.jsonl")
    assert {(r["optimizer"], r["seed"]) for r in rows} == {("sgd", 0), ("sgd", 1)}
    assert "Interrupted" in (out / "summary.md").read_text()


def test_demo_writes_one_self_contained_page(tmp_path, optzoo_main, monkeypatch):
    import re

    from optzoo.lab.cli import demo as demo_command

    tiny = demo_command.Budget(
        optimizers=("sgd", "adam"), seeds=1, epochs=2, batch_seeds=1, batch_plan=((32, 0.1, 1), (0, 0.5, 2)),
        kmeans_seeds=1, kmeans_plan=((32, 1), (0, 2)), surface_steps=20, gif=False, schedule_steps=30,
    )
    monkeypatch.setattr(demo_command, "QUICK", tiny)
    out = tmp_path / "report"
    assert optzoo_main(["demo", "--quick", "--workers", "1", "--no-progress", "--out", str(out)]) == 0
    page = (out / "index.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.count("data:image/png;base64,") >= 5
    # self-contained: nothing is loaded from elsewhere
    assert not re.search(r"""(src|href)=["'](?!data:|#)""", page)
    assert "<link" not in page and "<script" not in page
    for anchor in ("surfaces", "schedules", "training", "batch-size", "kmeans"):
        assert f'id="{anchor}"' in page
    assert benchkit.read_results(out / "files" / "results.jsonl")
