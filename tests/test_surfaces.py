"""The 2-D test surfaces, the trajectory runner and the tuned learning rates of the lab."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
import torch

from optzoo.lab.surfaces import SURFACES, Noisy, run_trajectories, run_trajectory, surface, tuned_lr, tuned_lrs
from optzoo.lab.surfaces import trajectory as trajectory_module
from optzoo.lab.surfaces.tune import FIRST_STEP, calibrated_lr

BOUNDED = [s for s in SURFACES.values() if s.bounded]
DEFAULT_OPTIMIZERS = ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam"]


def value_and_grad(function, point):
    xy = torch.tensor(point, dtype=torch.float64, requires_grad=True)
    value = function(xy)
    (grad,) = torch.autograd.grad(value, xy)
    return float(value.detach()), grad


def hessian(function, point):
    return torch.autograd.functional.hessian(function, torch.tensor(point, dtype=torch.float64))


def test_the_cli_names():
    assert list(SURFACES) == ["beale", "rosenbrock", "long-valley", "saddle", "monkey-saddle", "himmelblau",
                              "rastrigin"]
    assert surface("Beale") is SURFACES["beale"]
    with pytest.raises(ValueError, match="choose one of: beale, rosenbrock"):
        surface("nope")


@pytest.mark.parametrize("function", BOUNDED, ids=lambda s: s.name)
def test_value_and_gradient_at_the_known_minima(function):
    assert function.minima
    for point in function.minima:
        value, grad = value_and_grad(function, point)
        assert value == pytest.approx(function.min_value, abs=1e-12)
        assert torch.all(grad.abs() < 1e-9), (point, grad)
        # and it is a minimum: the Hessian there is positive definite
        assert torch.linalg.eigvalsh(hessian(function, point)).min() > 0


@pytest.mark.parametrize("function", BOUNDED, ids=lambda s: s.name)
def test_the_minimum_is_the_lowest_value_on_the_window(function):
    xs = torch.linspace(*function.xlim, 201, dtype=torch.float64)
    ys = torch.linspace(*function.ylim, 201, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)
    values = function(grid)
    assert values.shape == (201, 201)
    assert float(values.min()) >= function.min_value - 1e-12


def test_known_values_away_from_the_minima():
    """Hand-computed values: the formulas are the published ones."""
    assert float(SURFACES["beale"](torch.tensor([1.0, 1.5], dtype=torch.float64))) == pytest.approx(41.25)
    assert float(SURFACES["rosenbrock"](torch.tensor([-1.2, 1.0], dtype=torch.float64))) == pytest.approx(24.2)
    assert float(SURFACES["himmelblau"](torch.tensor([0.0, 0.0], dtype=torch.float64))) == pytest.approx(170.0)
    assert float(SURFACES["rastrigin"](torch.tensor([1.0, 0.5], dtype=torch.float64))) == pytest.approx(21.25)
    assert float(SURFACES["long-valley"](torch.tensor([-10.0, 1.0], dtype=torch.float64))) == pytest.approx(2.0)
    assert float(SURFACES["monkey-saddle"](torch.tensor([1.0, 1.0], dtype=torch.float64))) == pytest.approx(-2.0)


def test_long_valley_is_ill_conditioned():
    eigenvalues = torch.linalg.eigvalsh(hessian(SURFACES["long-valley"], (0.0, 0.0)))
    assert float(eigenvalues.max() / eigenvalues.min()) == pytest.approx(100.0)


def test_saddle_gradient_zero_and_hessian_indefinite():
    saddle = SURFACES["saddle"]
    assert not saddle.bounded and saddle.min_value is None and saddle.minima == ()
    value, grad = value_and_grad(saddle, (0.0, 0.0))
    assert value == 0.0 and torch.equal(grad, torch.zeros(2, dtype=torch.float64))
    eigenvalues = torch.linalg.eigvalsh(hessian(saddle, (0.0, 0.0)))
    assert eigenvalues.min() < 0 < eigenvalues.max()
    assert eigenvalues.tolist() == pytest.approx([-2.0, 2.0])


def test_monkey_saddle_is_degenerate():
    monkey = SURFACES["monkey-saddle"]
    _, grad = value_and_grad(monkey, (0.0, 0.0))
    assert torch.equal(grad, torch.zeros(2, dtype=torch.float64))
    assert torch.equal(hessian(monkey, (0.0, 0.0)), torch.zeros(2, 2, dtype=torch.float64))
    # three valleys: f < 0 along the directions at 60, 180 and 300 degrees
    for degrees in (60, 180, 300):
        angle = math.radians(degrees)
        assert float(monkey(torch.tensor([math.cos(angle), math.sin(angle)], dtype=torch.float64))) < 0


def test_himmelblau_marked_local_maximum():
    _, grad = value_and_grad(SURFACES["himmelblau"], SURFACES["himmelblau"].critical_points[0])
    assert grad.abs().max() < 1e-3


def test_sources_are_cited():
    for function in SURFACES.values():
        assert function.source and function.__doc__ and any(ch.isdigit() for ch in function.source)


# ----------------------------------------------------------------------------- noise


def test_noisy_gradient_has_the_set_std_and_unchanged_value():
    base = SURFACES["rosenbrock"]
    point = (-0.5, 0.7)
    clean_value, clean_grad = value_and_grad(base, point)
    noisy = Noisy(base, 0.5, seed=3)
    assert noisy.name == "rosenbrock" and noisy.minima == base.minima and noisy.stochastic
    grads, values = [], []
    for _ in range(4000):
        value, grad = value_and_grad(noisy, point)
        values.append(value)
        grads.append(grad)
    noise = torch.stack(grads) - clean_grad
    assert values == [clean_value] * 4000
    assert noise.std(dim=0).tolist() == pytest.approx([0.5, 0.5], rel=0.05)
    assert noise.mean(dim=0).abs().max() < 0.05
    assert abs(float(torch.corrcoef(noise.T)[0, 1])) < 0.06


def test_noisy_is_reproducible_and_fresh_restarts_it():
    noisy = Noisy(SURFACES["beale"], 1.0, seed=7)
    first = [value_and_grad(noisy, (1.0, 1.0))[1] for _ in range(3)]
    again = [value_and_grad(noisy.fresh(), (1.0, 1.0))[1] for _ in range(1)]
    assert torch.equal(first[0], again[0]) and not torch.equal(first[0], first[1])
    assert torch.equal(value_and_grad(Noisy(SURFACES["beale"], 1.0, seed=7), (1.0, 1.0))[1], first[0])
    zero = Noisy(SURFACES["beale"], 0.0)
    assert torch.equal(value_and_grad(zero, (1.0, 1.0))[1], value_and_grad(SURFACES["beale"], (1.0, 1.0))[1])
    with pytest.raises(ValueError):
        Noisy(SURFACES["beale"], -1.0)


# ----------------------------------------------------------------------------- trajectories


def test_trajectory_shapes_and_losses_follow_the_path():
    valley = SURFACES["long-valley"]
    run = run_trajectory(valley, "momentum", steps=120, lr=0.3)
    assert run.path.shape == (121, 2) and run.losses.shape == (121,)
    assert tuple(run.path[0]) == valley.start
    recomputed = valley(torch.from_numpy(run.path)).numpy()
    np.testing.assert_allclose(run.losses, recomputed, rtol=1e-12, atol=1e-15)
    assert run.status == "converged" and run.steps_to_tol is not None
    assert run.losses[run.steps_to_tol] <= 1e-3 < run.losses[run.steps_to_tol - 1]
    assert run.final_loss == run.losses[-1]
    assert run.distance_to_minimum == pytest.approx(float(np.hypot(*run.path[-1])))


def test_plain_gradient_descent_is_the_textbook_update():
    valley = SURFACES["long-valley"]
    run = run_trajectory(valley, "sgd", steps=5, lr=0.1)
    x, y = valley.start
    for step in range(1, 6):
        x, y = x - 0.1 * 2 * valley.a * x, y - 0.1 * 2 * valley.b * y
        assert run.path[step].tolist() == pytest.approx([x, y], rel=1e-12)


def test_divergence_stops_cleanly():
    run = run_trajectory(SURFACES["rosenbrock"], "sgd", steps=300, lr=1.0)
    assert run.status == "diverged"
    assert run.steps_done < 300
    assert np.isfinite(run.path).all()
    assert run.steps_to_tol is None and run.distance_to_minimum is None


def test_nan_gradient_counts_as_diverged():
    run = run_trajectory(SURFACES["beale"], "sgd", steps=50, lr=1e6)
    assert run.status == "diverged" and np.isfinite(run.path).all()


def test_saddle_runs_stop_when_they_escape():
    run = run_trajectory(SURFACES["saddle"], "adam", steps=300, lr=0.05)
    assert run.status == "escaped" and run.steps_done < 300
    assert run.steps_to_tol is not None and run.losses[run.steps_to_tol] <= -1.0
    stuck = run_trajectory(SURFACES["saddle"], "sgd", steps=50, lr=0.01)
    assert stuck.status == "stuck" and stuck.steps_to_tol is None


def test_lockstep_runs_equal_single_runs_also_with_noise():
    noisy = Noisy(SURFACES["beale"], 0.3, seed=1)
    specs = [("sgd", {"lr": 1e-3}), ("adam", {"lr": 0.05}), ("rmsprop", {"lr": 0.01})]
    together = run_trajectories(noisy, specs, steps=60)
    for (name, hyper), run in zip(specs, together, strict=True):
        alone = run_trajectory(noisy, name, steps=60, **hyper)
        np.testing.assert_array_equal(run.path, alone.path)
        assert run.optimizer == name and run.lr == hyper["lr"]


def test_unknown_optimizer_and_bad_hyper_parameter():
    with pytest.raises(ValueError, match="choose one of: sgd"):
        run_trajectory(SURFACES["beale"], "sgdd", steps=3)
    with pytest.raises(TypeError, match="takes no hyper-parameter"):
        run_trajectory(SURFACES["beale"], "sgd", steps=3, lr=0.1, betas=(0.9, 0.99))


def test_two_dimensional_runs_are_instant():
    function = SURFACES["rosenbrock"]
    run_trajectory(function, "adam", steps=10)
    began = time.perf_counter()
    run_trajectories(function, [(name, {}) for name in DEFAULT_OPTIMIZERS], steps=100)
    per_run = (time.perf_counter() - began) / len(DEFAULT_OPTIMIZERS)
    assert per_run < 0.1  # typically 5-10 ms per 100 steps


# ----------------------------------------------------------------------------- tuned learning rates


def test_tuned_learning_rates_ship_with_the_package():
    table = trajectory_module._tuned_table()
    assert table["command"].startswith("python -m optzoo.lab.surfaces.tune")
    assert "criterion" in table and table["grid"]
    lrs = tuned_lrs()
    assert set(lrs) == set(SURFACES)
    for name in SURFACES:
        for optimizer in DEFAULT_OPTIMIZERS:
            lr = tuned_lr(name, optimizer)
            assert lr is not None and lr > 0, (name, optimizer)
    assert tuned_lr("beale", "no-such-optimizer") is None


def test_default_lr_is_the_tuned_one_and_reproduces_the_recorded_result():
    table = trajectory_module._tuned_table()
    recorded = table["results"]["long-valley"]["momentum"]
    run = run_trajectory(SURFACES["long-valley"], "momentum")
    assert run.lr == recorded["lr"] == tuned_lr("long-valley", "momentum")
    assert run.steps_to_tol == recorded["steps_to_tol"] and run.status == recorded["status"]


def test_saddle_learning_rates_are_calibrated_to_the_same_first_step():
    saddle = SURFACES["saddle"]
    wanted = FIRST_STEP * math.hypot(saddle.xlim[1] - saddle.xlim[0], saddle.ylim[1] - saddle.ylim[0])
    for optimizer in ("sgd", "momentum", "adam"):
        lr = calibrated_lr(saddle, optimizer)
        assert lr == tuned_lr("saddle", optimizer)
        first = run_trajectory(saddle, optimizer, steps=1, lr=lr)
        assert wanted * 0.85 <= first.max_step <= wanted * 1.0001


def test_data_file_is_valid_json_next_to_the_module():
    from importlib import resources

    text = resources.files("optzoo.lab.surfaces").joinpath("data/surface_lrs.json").read_text(encoding="utf-8")
    assert json.loads(text)["lrs"]


def test_tune_command_reproduces_the_shipped_numbers(tmp_path, capsys):
    from optzoo.lab.surfaces import tune as tune_surfaces

    out = tmp_path / "lrs.json"
    assert tune_surfaces.main(["--surfaces", "long-valley,saddle", "--optimizers", "momentum", "--out", str(out),
                               "--quiet"]) == 0
    document = json.loads(out.read_text())
    assert document["command"].startswith("python -m optzoo.lab.surfaces.tune --surfaces long-valley,saddle")
    for function in ("long-valley", "saddle"):
        assert document["lrs"][function] == {"momentum": tuned_lr(function, "momentum")}
    with pytest.raises(SystemExit):
        tune_surfaces.main(["--surfaces", "nope", "--out", str(out)])
