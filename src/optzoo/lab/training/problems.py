"""Training problems on real data that ships inside scikit-learn (nothing is downloaded).

Each problem bundles a model factory, a loss, a metric and a fixed
train / validation / test split:

==========================  ==================================================  ==========
name                        what                                                metric
==========================  ==================================================  ==========
``digits-logreg``           softmax regression on the 8x8 digits (64 -> 10)      accuracy
``digits-mlp``              2-layer MLP on the digits (64 -> 128 -> 10, ReLU)    accuracy
``digits-cnn``              small CNN on the 8x8 digit images                    accuracy
``breast-cancer-logreg``    logistic regression on the Wisconsin breast cancer   accuracy
``diabetes-linreg``         least-squares linear regression on diabetes          R^2
``kmeans``                  K-means (K=10) on the digits, centroids trained by   purity
                            gradient steps: batch, mini-batch or stochastic
==========================  ==================================================  ==========

The data are scikit-learn's bundled data sets, read straight from its wheel
(importing scikit-learn itself takes seconds). The split depends only on
``split_seed`` (default 0), so runs with different run seeds (initialisation,
shuffling) share the same data. The model factory draws from torch's global
RNG; the trainer seeds it.

Example:
    >>> p = problem("digits-logreg")
    >>> len(p.train), len(p.val), len(p.test), p.metric_name
    (1079, 359, 359, 'accuracy')
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["DEFAULT_LR", "Problem", "Split", "problem", "problems"]

#: A learning rate per optimizer that works on the lab's small problems with
#: mini-batches of 32. Problems override entries where they need to.
DEFAULT_LR: dict[str, float] = {
    "sgd": 0.1,
    "momentum": 0.01,
    "ema-momentum": 0.1,
    "nesterov": 0.01,
    "adagrad": 0.01,
    "rmsprop": 1e-3,
    "adadelta": 1.0,
    "adam": 1e-3,
    "amsgrad": 1e-3,
    "adamw": 1e-3,
    "adamax": 2e-3,
    "nadam": 2e-3,
    "radam": 1e-3,
    "rprop": 1e-3,
    "adabound": 1e-3,
    "amsbound": 1e-3,
    "lookahead": 1e-3,
    "ranger": 1e-3,
    "swats": 1e-3,
}


@dataclass(frozen=True)
class Split:
    """Inputs and targets of one part of a data set."""

    x: Tensor
    y: Tensor

    def __len__(self) -> int:
        return int(self.x.shape[0])


@dataclass
class Problem:
    """One training problem: data split, model factory, loss and metric.

    ``loss(output, y)`` is a scalar tensor (mean over the batch);
    ``metric(output, y)`` is a float over a whole split.
    """

    name: str
    description: str
    train: Split
    val: Split
    test: Split
    build_model: Callable[[], nn.Module]
    loss: Callable[[Tensor, Tensor], Tensor]
    metric: Callable[[Tensor, Tensor], float]
    metric_name: str
    higher_is_better: bool = True
    default_epochs: int = 30
    default_batch_size: int = 32
    lr_overrides: dict[str, float] = field(default_factory=dict)
    lr_rule: Callable[[str, int, int], float | None] | None = None

    def default_lr(self, optimizer: str, batch_size: int | None = None) -> float:
        """A learning rate that works for ``optimizer`` here (the batch size matters for some problems)."""
        n = len(self.train)
        batch = n if not batch_size or batch_size >= n else batch_size
        if self.lr_rule is not None:
            lr = self.lr_rule(optimizer, batch, n)
            if lr is not None:
                return lr
        return self.lr_overrides.get(optimizer, DEFAULT_LR.get(optimizer, 1e-3))

    def evaluate(self, model: nn.Module, split: Split) -> tuple[float, float]:
        """Loss and metric of ``model`` on a whole split (no gradient)."""
        was_training = model.training
        model.eval()
        with torch.no_grad():
            output = model(split.x)
            loss = float(self.loss(output, split.y))
            metric = float(self.metric(output, split.y))
        model.train(was_training)
        return loss, metric


# ----------------------------------------------------------------------------- metrics and losses


def _accuracy(output: Tensor, y: Tensor) -> float:
    return float((output.argmax(dim=1) == y).float().mean())


def _binary_accuracy(output: Tensor, y: Tensor) -> float:
    return float(((output.squeeze(1) > 0).float() == y).float().mean())


def _binary_loss(output: Tensor, y: Tensor) -> Tensor:
    return nn.functional.binary_cross_entropy_with_logits(output.squeeze(1), y)


def _mse(output: Tensor, y: Tensor) -> Tensor:
    return nn.functional.mse_loss(output.squeeze(1), y)


def _r2(output: Tensor, y: Tensor) -> float:
    residual = ((output.squeeze(1) - y) ** 2).sum()
    total = ((y - y.mean()) ** 2).sum()
    return float(1.0 - residual / total)


# ----------------------------------------------------------------------------- data


def _sklearn_data_file(name: str) -> Path | None:
    """A data file bundled in scikit-learn's wheel, found without importing scikit-learn (slow to import)."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / name
    return path if path.is_file() else None


def _load(dataset: str) -> tuple[np.ndarray, np.ndarray]:
    """Features and targets of one of scikit-learn's bundled data sets (read straight from the wheel)."""
    files = {"digits": ("digits.csv.gz",), "breast_cancer": ("breast_cancer.csv",),
             "diabetes": ("diabetes_data_raw.csv.gz", "diabetes_target.csv.gz")}[dataset]
    paths = [_sklearn_data_file(f) for f in files]
    if all(p is not None for p in paths):
        if dataset == "digits":
            table = np.loadtxt(paths[0], delimiter=",")
            return table[:, :-1], table[:, -1].astype(np.int64)
        if dataset == "breast_cancer":
            table = np.loadtxt(paths[0], delimiter=",", skiprows=1)
            return table[:, :-1], table[:, -1].astype(np.int64)
        return np.loadtxt(paths[0]), np.loadtxt(paths[1])
    # another scikit-learn layout: its own loaders (same data, slower import)
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{dataset}")()
    return np.asarray(bunch.data, dtype=np.float64), np.asarray(bunch.target)


def _split(x: np.ndarray, y: np.ndarray, seed: int, stratify: bool, y_dtype: torch.dtype) -> tuple[Split, ...]:
    """60 / 20 / 20 split (train / validation / test), stratified by class for classification."""
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(y == c) for c in np.unique(y)] if stratify else [np.arange(len(y))]
    parts: list[list[np.ndarray]] = [[], [], []]
    for group in groups:
        group = rng.permutation(group)
        n_test = round(0.2 * len(group))
        n_val = round(0.2 * len(group))
        parts[2].append(group[:n_test])
        parts[1].append(group[n_test:n_test + n_val])
        parts[0].append(group[n_test + n_val:])
    splits = []
    for chunks in parts:
        index = rng.permutation(np.concatenate(chunks))
        splits.append(Split(torch.as_tensor(x[index], dtype=torch.float32), torch.as_tensor(y[index], dtype=y_dtype)))
    return tuple(splits)


def _standardise(train: Split, *others: Split) -> tuple[Split, ...]:
    mean = train.x.mean(dim=0)
    std = train.x.std(dim=0)
    std = torch.where(std > 1e-8, std, torch.ones_like(std))
    return tuple(Split((s.x - mean) / std, s.y) for s in (train, *others))


def _digits(split_seed: int) -> tuple[Split, ...]:
    x, y = _load("digits")
    return _split(x / 16.0, y, split_seed, stratify=True, y_dtype=torch.long)


# ----------------------------------------------------------------------------- models


class _Flatten8x8(nn.Module):
    """Reshape 64 pixels into a 1x8x8 image."""

    def forward(self, x: Tensor) -> Tensor:
        return x.view(-1, 1, 8, 8)


class KMeansModel(nn.Module):
    """K centroids as parameters; ``forward`` returns squared distances (batch x K)."""

    def __init__(self, init: Tensor) -> None:
        super().__init__()
        self.centroids = nn.Parameter(init.clone())

    def forward(self, x: Tensor) -> Tensor:
        diff = x.unsqueeze(1) - self.centroids.unsqueeze(0)
        return (diff * diff).sum(dim=2)


def _kmeans_loss(distances: Tensor, y: Tensor) -> Tensor:
    """Mean squared distance of each point to its nearest centroid (the K-means distortion)."""
    return distances.min(dim=1).values.mean()


def _purity(distances: Tensor, y: Tensor) -> float:
    """Share of points whose label is their cluster's majority label."""
    assign = distances.argmin(dim=1)
    k = distances.shape[1]
    classes = int(y.max()) + 1
    counts = torch.zeros(k, classes)
    counts.index_put_((assign, y), torch.ones_like(assign, dtype=torch.float32), accumulate=True)
    return float(counts.max(dim=1).values.sum() / len(y))


# ----------------------------------------------------------------------------- the problems


def _digits_logreg(split_seed: int) -> Problem:
    train, val, test = _digits(split_seed)
    return Problem(
        "digits-logreg", "softmax regression on the 8x8 digits (64 -> 10)", train, val, test,
        lambda: nn.Linear(64, 10), nn.functional.cross_entropy, _accuracy, "accuracy",
        lr_overrides={"sgd": 0.5, "momentum": 0.05, "nesterov": 0.05, "adagrad": 0.1, "rmsprop": 3e-3,
                      "adam": 1e-2, "amsgrad": 1e-2, "adamw": 1e-2, "radam": 1e-2, "ranger": 1e-2,
                      "adabound": 1e-2, "swats": 1e-2, "nadam": 1e-2, "adamax": 1e-2},
    )


def _digits_mlp(split_seed: int) -> Problem:
    train, val, test = _digits(split_seed)
    return Problem(
        "digits-mlp", "2-layer MLP on the 8x8 digits (64 -> 128 -> 10, ReLU)", train, val, test,
        lambda: nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10)),
        nn.functional.cross_entropy, _accuracy, "accuracy",
    )


def _digits_cnn(split_seed: int) -> Problem:
    train, val, test = _digits(split_seed)
    return Problem(
        "digits-cnn", "small CNN on the 8x8 digit images (conv 8, pool, conv 16, linear)", train, val, test,
        lambda: nn.Sequential(
            _Flatten8x8(),
            nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),
            nn.Flatten(), nn.Linear(16 * 4 * 4, 10),
        ),
        nn.functional.cross_entropy, _accuracy, "accuracy", default_epochs=15,
    )


def _breast_cancer_logreg(split_seed: int) -> Problem:
    x, y = _load("breast_cancer")
    train, val, test = _standardise(*_split(x, y, split_seed, True, torch.float32))
    return Problem(
        "breast-cancer-logreg", "logistic regression on the Wisconsin breast cancer data (30 features)",
        train, val, test, lambda: nn.Linear(30, 1), _binary_loss, _binary_accuracy, "accuracy",
        lr_overrides={"sgd": 0.1, "momentum": 0.01, "nesterov": 0.01, "adam": 3e-3, "adamw": 3e-3},
    )


def _diabetes_linreg(split_seed: int) -> Problem:
    x, y = _load("diabetes")
    train, val, test = _standardise(*_split(x, y, split_seed, False, torch.float32))
    mean, std = train.y.mean(), train.y.std()
    train, val, test = (Split(s.x, (s.y - mean) / std) for s in (train, val, test))
    return Problem(
        "diabetes-linreg", "least-squares linear regression on the diabetes data (10 features, target standardised)",
        train, val, test, lambda: nn.Linear(10, 1), _mse, _r2, "R^2",
        lr_overrides={"sgd": 0.05, "momentum": 0.005, "nesterov": 0.005, "adagrad": 0.1, "rmsprop": 3e-3,
                      "adam": 1e-2, "amsgrad": 1e-2, "adamw": 1e-2, "radam": 1e-2, "ranger": 1e-2,
                      "adabound": 1e-2, "swats": 1e-2},
    )


KMEANS_K = 10


def _kmeans_lr(optimizer: str, batch: int, n: int) -> float | None:
    """Plain SGD on K-means: a step of 2 lr n_j/B (mean_j - c_j) per centroid.

    lr = K/4 makes a full-batch step about half a Lloyd step; one sample at a
    time needs a far smaller step (lr = 0.05 moves a centroid 10% of the way to
    the sample). In between, the step grows with the batch.
    """
    if optimizer != "sgd":
        return None
    return min(KMEANS_K / 4, 0.05 * batch)


def _kmeans(split_seed: int) -> Problem:
    train, val, test = _digits(split_seed)

    def build() -> nn.Module:
        # K distinct training points, drawn with torch's (seeded) global RNG
        return KMeansModel(train.x[torch.randperm(len(train))[:KMEANS_K]])

    return Problem(
        "kmeans", f"K-means (K={KMEANS_K}) on the digits: centroids trained by gradient steps on the distortion",
        train, val, test, build, _kmeans_loss, _purity, "purity", default_epochs=20,
        lr_overrides={"momentum": 0.1, "nesterov": 0.1, "adam": 0.01, "adamw": 0.01}, lr_rule=_kmeans_lr,
    )


_PROBLEMS: dict[str, tuple[Callable[[int], Problem], str]] = {
    "digits-logreg": (_digits_logreg, "softmax regression on the 8x8 digits (accuracy)"),
    "digits-mlp": (_digits_mlp, "2-layer MLP 64-128-10 on the 8x8 digits (accuracy)"),
    "digits-cnn": (_digits_cnn, "small CNN on the 8x8 digit images (accuracy)"),
    "breast-cancer-logreg": (_breast_cancer_logreg, "logistic regression on breast cancer, 30 features (accuracy)"),
    "diabetes-linreg": (_diabetes_linreg, "least-squares linear regression on diabetes (R^2)"),
    "kmeans": (_kmeans, "K-means, K=10, on the digits by gradient steps: batch / mini-batch / stochastic (purity)"),
}


def problems() -> dict[str, str]:
    """Problem names with a one-line description each."""
    return {name: description for name, (_, description) in _PROBLEMS.items()}


@functools.lru_cache(maxsize=16)
def _cached(name: str, split_seed: int) -> Problem:
    return _PROBLEMS[name][0](split_seed)


def problem(name: str, split_seed: int = 0) -> Problem:
    """Build the problem registered as ``name`` (its data split fixed by ``split_seed``).

    Raises ``ValueError`` listing the valid names for an unknown one.
    """
    if name not in _PROBLEMS:
        raise ValueError(f"unknown problem {name!r}; choose one of: {', '.join(_PROBLEMS)}")
    return _cached(name, split_seed)
