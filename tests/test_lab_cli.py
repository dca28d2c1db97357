"""The lab's sub-commands end to end: ``optzoo surface``, ``optzoo schedule``, ``optzoo lr-find``."""

from __future__ import annotations

import itertools
import json

import pytest
from PIL import Image

from optzoo import registry
from optzoo.cli import main


def surface(tmp_path, *options):
    assert main(["surface", "--no-progress", "--out", str(tmp_path), *options]) == 0


def results(tmp_path, function):
    document = json.loads((tmp_path / f"{function}.json").read_text())
    return {row["optimizer"]: row for row in document["results"]}, document


def assert_image(path, min_size=(400, 250)):
    assert path.is_file() and path.stat().st_size > 0
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.size[0] >= min_size[0] and image.size[1] >= min_size[1]
        return image.format


def exit_code_and_error(capsys, argv):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    err = capsys.readouterr().err
    return stop.value.code, err


# ----------------------------------------------------------------------------- optzoo surface


def test_surface_writes_pictures_gif_and_table(tmp_path, capsys):
    surface(tmp_path, "--function", "beale", "--optimizers", "sgd,momentum,nesterov,adagrad,rmsprop,adam",
            "--steps", "300", "--gif", "--frames", "40")
    printed = capsys.readouterr().out
    assert assert_image(tmp_path / "beale.png", (800, 500)) == "PNG"
    assert assert_image(tmp_path / "beale_loss.png") == "PNG"
    assert assert_image(tmp_path / "beale.gif") == "GIF"
    with Image.open(tmp_path / "beale.gif") as gif:
        assert gif.is_animated and 20 <= gif.n_frames <= 40
    assert (tmp_path / "beale.gif").stat().st_size < 2_000_000

    table = (tmp_path / "beale.md").read_text()
    header = "| optimizer | lr | final loss | distance to nearest minimum | steps to tol | status |"
    assert header in table and header in printed
    rows, document = results(tmp_path, "beale")
    assert list(rows) == ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam"]
    assert document["steps"] == 300 and document["minima"] == [[3.0, 0.5]]
    for name, row in rows.items():
        assert f"| {name} |" in table
        assert row["lr_source"] == "tuned" and row["lr"] > 0
        assert row["status"] in {"converged", "stuck", "max steps", "diverged"}
        if row["status"] == "converged":
            assert row["final_loss"] <= 1e-3 and row["steps_to_tol"] is not None
            assert row["distance_to_minimum"] < 0.2
    assert rows["adam"]["status"] == "converged"


def test_saddle_gradient_descent_lingers_on_the_ridge(tmp_path):
    """Started next to the ridge (y = 1e-3), plain GD slides into the saddle and creeps out of it;
    momentum and Adam leave far sooner (same first step for everyone, see tune_surfaces)."""
    surface(tmp_path, "--function", "saddle", "--optimizers", "sgd,momentum,nesterov,adam", "--start=1,1e-3")
    rows, document = results(tmp_path, "saddle")
    assert document["start"] == [1.0, 0.001]
    assert all(row["status"] == "escaped" for row in rows.values())
    assert all(row["distance_to_minimum"] is None for row in rows.values())
    gd = rows["sgd"]["steps_to_tol"]
    for fast in ("momentum", "nesterov", "adam"):
        assert gd > 2 * rows[fast]["steps_to_tol"], (fast, rows[fast]["steps_to_tol"], gd)
    assert "steps to escape" in (tmp_path / "saddle.md").read_text()


def test_saddle_with_one_learning_rate_for_all(tmp_path):
    """The same comparison at one shared learning rate: GD's escape rate is only (1 + 2 lr) per step."""
    surface(tmp_path, "--function", "saddle", "--optimizers", "sgd,momentum,adam", "--lr", "0.01")
    rows, _ = results(tmp_path, "saddle")
    assert all(row["lr"] == 0.01 and row["lr_source"] == "given" for row in rows.values())
    assert rows["sgd"]["status"] == "stuck"  # still at the saddle after 300 steps
    assert rows["momentum"]["status"] == rows["adam"]["status"] == "escaped"


def test_long_valley_momentum_reaches_tolerance_before_gradient_descent(tmp_path):
    surface(tmp_path, "--function", "long-valley", "--optimizers", "sgd,momentum,nesterov,adam")
    rows, _ = results(tmp_path, "long-valley")
    gd = rows["sgd"]["steps_to_tol"]
    assert gd is not None and rows["sgd"]["status"] == "converged"
    for fast in ("momentum", "nesterov"):
        assert rows[fast]["steps_to_tol"] < gd / 3


def test_noise_and_explicit_learning_rates(tmp_path):
    from optzoo.lab.surfaces import SURFACES, Noisy, run_trajectory

    surface(tmp_path, "--function", "himmelblau", "--optimizers", "sgd,adam", "--noise", "2", "--seed", "4",
            "--lr", "sgd=0.005", "--lr", "adam=0.1", "--steps", "150")
    rows, document = results(tmp_path, "himmelblau")
    assert document["noise"] == {"sigma": 2.0, "seed": 4}
    assert rows["sgd"]["lr"] == 0.005 and rows["adam"]["lr"] == 0.1
    assert all(row["lr_source"] == "given" for row in rows.values())
    # the table is the noisy run of that seed, not the clean one
    noisy = run_trajectory(Noisy(SURFACES["himmelblau"], 2.0, seed=4), "sgd", steps=150, lr=0.005)
    clean = run_trajectory(SURFACES["himmelblau"], "sgd", steps=150, lr=0.005)
    assert rows["sgd"]["final_point"] == noisy.path[-1].tolist() != clean.path[-1].tolist()
    assert "gradient noise σ = 2" in document["title"]


def test_unknown_optimizer_lists_the_valid_names(tmp_path, capsys):
    code, err = exit_code_and_error(capsys, ["surface", "--optimizers", "sgd,adamm", "--out", str(tmp_path / "o")])
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "'adamm'" in err and "choose from: " + ", ".join(registry.optimizers()) in err
    assert not (tmp_path / "o").exists()


def test_unknown_function_lists_the_valid_names(tmp_path, capsys):
    code, err = exit_code_and_error(capsys, ["surface", "--function", "bael", "--out", str(tmp_path)])
    assert code == 2 and "--function" in err and "beale, rosenbrock, long-valley, saddle" in err


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (["--steps", "many"], "--steps"),
        (["--steps", "0"], "--steps"),
        (["--noise", "-1"], "--noise"),
        (["--start", "1"], "--start"),
        (["--lr", "adam=fast"], "--lr adam"),
        (["--lr", "sgd=-0.1"], "--lr sgd"),
        (["--lr", "rprop=0.1"], "--lr"),
        (["--frames", "1"], "--frames"),
    ],
)
def test_bad_values_name_the_option(tmp_path, capsys, options, named):
    code, err = exit_code_and_error(capsys, ["surface", "--optimizers", "sgd,adam", "--out", str(tmp_path), *options])
    assert code == 2 and named in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_unwritable_out_fails_before_any_work(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code, err = exit_code_and_error(capsys, ["surface", "--out", str(blocker / "inside")])
    assert code == 2 and "--out" in err and "Traceback" not in err
    code, err = exit_code_and_error(capsys, ["surface", "--out", str(blocker)])
    assert code == 2 and "not a folder" in err


# ----------------------------------------------------------------------------- optzoo schedule

COURSE_SCHEDULES = ["step", "exponential", "noam", "cyclical", "sgdr"]


def schedules_ready(names):
    try:
        return set(names) <= set(registry.schedules())
    except Exception:
        return False


@pytest.mark.skipif(not schedules_ready(COURSE_SCHEDULES), reason="optzoo.schedules not registered yet")
def test_schedule_plot(tmp_path, capsys):
    assert main(["schedule", "--no-progress", "--schedules", ",".join(COURSE_SCHEDULES), "--steps", "600",
                 "--out", str(tmp_path)]) == 0
    assert "| schedule |" in capsys.readouterr().out
    assert assert_image(tmp_path / "schedules.png", (800, 600)) == "PNG"
    document = json.loads((tmp_path / "schedules.json").read_text())
    curves = document["lr"]
    assert list(curves) == COURSE_SCHEDULES and all(len(c) == 600 for c in curves.values())
    step = curves["step"]
    assert step[0] == pytest.approx(0.1) and step[-1] < step[0]  # decays in steps
    exponential = curves["exponential"]
    assert all(b < a for a, b in itertools.pairwise(exponential))
    noam = curves["noam"]
    peak = max(range(600), key=noam.__getitem__)
    assert 0 < peak < 599 and noam[0] < noam[peak] and noam[-1] < noam[peak]  # warm-up, then decay
    cyclical = curves["cyclical"]
    assert max(cyclical) > 5 * min(cyclical)
    sgdr = curves["sgdr"]
    assert any(b > a * 2 for a, b in itertools.pairwise(sgdr))  # a warm restart


@pytest.mark.skipif(not schedules_ready(["plateau", "onecycle"]), reason="optzoo.schedules not registered yet")
def test_schedule_torch_ones_and_overrides(tmp_path):
    assert main(["schedule", "--no-progress", "--schedules", "plateau,onecycle", "--steps", "300",
                 "--set", "onecycle.pct_start=0.5", "--out", str(tmp_path)]) == 0
    document = json.loads((tmp_path / "schedules.json").read_text())
    assert document["hyper"]["onecycle"]["pct_start"] == 0.5
    plateau = document["lr"]["plateau"]
    assert plateau[-1] < plateau[0]


def test_schedule_unknown_name(tmp_path, capsys):
    code, err = exit_code_and_error(capsys, ["schedule", "--schedules", "cosine-ish", "--out", str(tmp_path)])
    assert code == 2 and "choose from: " in err and "onecycle" in err


# ----------------------------------------------------------------------------- optzoo lr-find


def lr_range_test_ready():
    try:
        from optzoo.schedules import lr_range_test  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not lr_range_test_ready(), reason="optzoo.schedules.lr_range_test not written yet")
def test_lr_find(tmp_path, capsys):
    assert main(["lr-find", "--no-progress", "--problem", "digits-logreg", "--optimizer", "sgd", "--iters", "60",
                 "--out", str(tmp_path)]) == 0
    assert "suggested lr" in capsys.readouterr().out
    assert assert_image(tmp_path / "digits-logreg_sgd.png") == "PNG"
    document = json.loads((tmp_path / "digits-logreg_sgd.json").read_text())
    assert 1e-6 <= document["suggested_lr"] <= 10
    assert len(document["lrs"]) == len(document["losses"]) >= 10


def test_lr_find_bad_options(tmp_path, capsys):
    code, err = exit_code_and_error(capsys, ["lr-find", "--problem", "mnist", "--out", str(tmp_path)])
    assert code == 2 and "digits-logreg, digits-mlp" in err
    code, err = exit_code_and_error(capsys, ["lr-find", "--optimizer", "sdg", "--out", str(tmp_path)])
    assert code == 2 and "choose from: sgd" in err
    code, err = exit_code_and_error(capsys, ["lr-find", "--start-lr", "1", "--end-lr", "0.1", "--out", str(tmp_path)])
    assert code == 2 and "--end-lr" in err


def test_every_registered_schedule_plots_with_its_defaults(tmp_path):
    """Each schedule's default hyper-parameters in the CLI match the class's keyword names."""
    names = ",".join(registry.schedules())
    assert main(["schedule", "--schedules", names, "--steps", "200", "--out", str(tmp_path)]) == 0
    table = (tmp_path / "schedules.md").read_text()
    for name in registry.schedules():
        assert f"| {name} |" in table
