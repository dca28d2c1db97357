"""The lab's training loop: shuffling, batching, seeds, resume, early stopping, divergence, interruption."""

from __future__ import annotations

import math

import pytest
import torch

from optzoo.lab.training import BatchSampler, RunConfig, benchkit, load_checkpoint, problem, problems, train


def _params(result):
    return result.model_state


def _same_params(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _losses(result):
    return [(r.epoch, r.train_loss, r.val_loss, r.train_metric, r.val_metric, r.lr, r.steps) for r in result.epochs]


# ----------------------------------------------------------------------------- shuffling and batching


def test_each_epoch_is_a_fresh_permutation():
    sampler = BatchSampler(50, batch_size=7, seed=3)
    orders = [torch.cat(sampler.epoch()) for _ in range(4)]
    for order in orders:
        assert torch.equal(order.sort().values, torch.arange(50))
    assert all(not torch.equal(orders[i], orders[j]) for i in range(4) for j in range(i + 1, 4))
    assert not torch.equal(orders[0], torch.arange(50))


def test_shuffle_false_keeps_one_fixed_order():
    sampler = BatchSampler(50, batch_size=7, seed=3, shuffle=False)
    for _ in range(3):
        assert torch.equal(torch.cat(sampler.epoch()), torch.arange(50))


def test_same_seed_same_permutations_and_different_seed_different():
    a, b, c = (BatchSampler(40, 8, seed=s) for s in (1, 1, 2))
    first_a, first_b, first_c = (torch.cat(s.epoch()) for s in (a, b, c))
    assert torch.equal(first_a, first_b)
    assert not torch.equal(first_a, first_c)


@pytest.mark.parametrize(
    ("batch_size", "sizes"),
    [(7, [7] * 7 + [1]), (1, [1] * 50), (0, [50]), (50, [50]), (500, [50]), (25, [25, 25])],
)
def test_batch_sizes(batch_size, sizes):
    assert [len(b) for b in BatchSampler(50, batch_size, seed=0).epoch()] == sizes


def test_sampler_rejects_bad_sizes():
    with pytest.raises(ValueError):
        BatchSampler(10, -1, seed=0)
    with pytest.raises(ValueError):
        BatchSampler(0, 1, seed=0)


@pytest.mark.parametrize("batch_size", [1, 32, 0])
def test_steps_per_epoch_follow_the_batch_size(batch_size):
    task = problem("diabetes-linreg")
    n = len(task.train)
    result = train(task, RunConfig("sgd", epochs=2, batch_size=batch_size, seed=0))
    per_epoch = {1: n, 32: math.ceil(n / 32), 0: 1}[batch_size]
    assert result.status == "ok"
    assert [r.steps for r in result.epochs] == [0, per_epoch, 2 * per_epoch]
    assert result.batch_size == (batch_size or n)


def test_shuffling_changes_the_run_and_fixed_order_is_reproducible():
    task = problem("diabetes-linreg")
    shuffled = train(task, RunConfig("sgd", epochs=2, batch_size=16, seed=0))
    fixed = train(task, RunConfig("sgd", epochs=2, batch_size=16, seed=0, shuffle=False))
    fixed_again = train(task, RunConfig("sgd", epochs=2, batch_size=16, seed=0, shuffle=False))
    assert not _same_params(_params(shuffled), _params(fixed))
    assert _same_params(_params(fixed), _params(fixed_again))


# ----------------------------------------------------------------------------- seeds and resume


def test_same_seed_is_bit_identical_and_another_seed_differs():
    task = problem("digits-mlp")
    config = RunConfig("adam", epochs=2, batch_size=64, seed=5)
    a, b = train(task, config), train(task, config)
    assert _same_params(_params(a), _params(b))
    assert _losses(a) == _losses(b)
    c = train(task, RunConfig("adam", epochs=2, batch_size=64, seed=6))
    assert not _same_params(_params(a), _params(c))


def test_training_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train(problem("diabetes-linreg"), RunConfig("sgd", epochs=1, seed=0))
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize(
    "config",
    [
        dict(optimizer="momentum", batch_size=32),
        dict(optimizer="adam", batch_size=64, schedule="onecycle", schedule_per="step"),
        dict(optimizer="sgd", batch_size=0, shuffle=False),
    ],
    ids=["momentum", "adam+onecycle-per-step", "full-batch"],
)
def test_resume_from_checkpoint_equals_an_uninterrupted_run(tmp_path, config):
    task = problem("digits-mlp")
    whole = train(task, RunConfig(epochs=4, seed=2, **config))
    first = train(task, RunConfig(epochs=4, seed=2, stop_after=2, checkpoint_dir=str(tmp_path), **config))
    assert first.status == "stopped" and len(first.epochs) == 3
    assert (tmp_path / "last.pt").exists() and (tmp_path / "best.pt").exists()
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 2
    resumed = train(task, RunConfig(epochs=4, seed=2, **config), resume_from=tmp_path / "last.pt")
    assert resumed.status == "ok"
    assert _same_params(_params(resumed), _params(whole))
    assert _losses(resumed) == _losses(whole)
    assert resumed.test_metric == whole.test_metric


def test_resume_refuses_another_run(tmp_path):
    task = problem("diabetes-linreg")
    train(task, RunConfig("sgd", epochs=2, seed=0, stop_after=1, checkpoint_dir=str(tmp_path)))
    result = train(task, RunConfig("sgd", epochs=2, seed=1), resume_from=tmp_path / "last.pt")
    assert result.status == "error" and "seed" in result.message


def test_best_checkpoint_holds_the_lowest_validation_loss(tmp_path):
    task = problem("digits-logreg")
    result = train(task, RunConfig("sgd", epochs=3, seed=0, checkpoint_dir=str(tmp_path)))
    best = load_checkpoint(tmp_path / "best.pt")
    assert best["epoch"] == result.best_epoch
    assert best["best_val_loss"] == min(r.val_loss for r in result.epochs)


# ----------------------------------------------------------------------------- stopping and failures


def test_early_stopping_triggers():
    result = train(problem("diabetes-linreg"), RunConfig("sgd", epochs=20, seed=0, patience=2, min_delta=1e9))
    assert result.status == "early-stopped"
    assert [r.epoch for r in result.epochs] == [0, 1, 2]


def test_divergence_ends_the_run_with_status_diverged():
    result = train(problem("diabetes-linreg"), RunConfig("sgd", lr=1e6, epochs=5, seed=0))
    assert result.status == "diverged"
    assert len(result.epochs) < 6
    assert math.isnan(result.test_metric)


def test_a_diverged_run_does_not_stop_the_others(tmp_path):
    jobs = [
        benchkit.Job("diabetes-linreg", dict(optimizer="sgd", lr=1e6, epochs=3, seed=0), label="sgd-huge"),
        benchkit.Job("diabetes-linreg", dict(optimizer="sgd", epochs=3, seed=0), label="sgd"),
    ]
    rows = benchkit.run_jobs(jobs, tmp_path / "r.jsonl", workers=1, progress=False)
    status = {r["label"]: r["status"] for r in rows}
    assert status == {"sgd-huge": "diverged", "sgd": "ok"}
    summary = {s.label: s for s in benchkit.summarize(benchkit.read_results(tmp_path / "r.jsonl"))}
    assert summary["sgd-huge"].diverged == 1 and math.isnan(summary["sgd-huge"].val_metric[0])
    assert summary["sgd"].diverged == 0 and summary["sgd"].val_metric[0] > 0


def test_a_bad_hyper_parameter_is_an_error_status_not_a_crash():
    result = train(problem("diabetes-linreg"), RunConfig("sgd", hyper={"no_such": 1}, epochs=1))
    assert result.status == "error" and "no_such" in result.message


def test_results_file_is_readable_after_the_run_list_is_cut(tmp_path, monkeypatch):
    real = benchkit.run_job
    calls = []

    def cut_after_two(job):
        calls.append(job)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(job)

    monkeypatch.setattr(benchkit, "run_job", cut_after_two)
    jobs = [benchkit.Job("diabetes-linreg", dict(optimizer="sgd", epochs=2, seed=s), label="sgd") for s in range(4)]
    path = tmp_path / "results.jsonl"
    with pytest.raises(KeyboardInterrupt):
        benchkit.run_jobs(jobs, path, workers=1, progress=False)
    rows = benchkit.read_results(path)
    assert sorted({r["seed"] for r in rows}) == [0, 1]
    assert len(rows) == 2 * 3
    # a line cut in the middle of writing is skipped, not fatal
    with open(path, "a", encoding="utf-8") as handle:
        handle.write('{"problem": "diabetes-linreg", "optim')
    assert len(benchkit.read_results(path)) == 6


# ----------------------------------------------------------------------------- the problems


@pytest.mark.parametrize("name", list(problems()))
def test_every_problem_trains_one_epoch(name):
    task = problem(name)
    assert len(task.train) > len(task.val) > 0 and len(task.test) > 0
    result = train(task, RunConfig("sgd", epochs=1, batch_size=64, seed=0))
    assert result.status == "ok", result.message
    assert result.epochs[1].train_loss < result.epochs[0].train_loss
    assert math.isfinite(result.test_metric)


def test_unknown_problem_lists_the_valid_ones():
    with pytest.raises(ValueError, match="digits-mlp"):
        problem("mnist")


def test_kmeans_stochastic_updates_converge_faster_per_epoch():
    task = problem("kmeans")
    stochastic = train(task, RunConfig("sgd", epochs=1, batch_size=1, seed=0))
    batch = train(task, RunConfig("sgd", epochs=1, batch_size=0, seed=0))
    assert stochastic.final.train_loss < batch.final.train_loss
