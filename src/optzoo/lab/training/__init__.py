"""Training on real offline data: the problems, the training loop, and the runs behind ``bench`` and ``demo``.

``problems``: models on data that ships in scikit-learn's wheel; ``loop``: one training run (shuffling,
early stopping, best and last checkpoints); ``benchkit``: many runs in worker processes and their results.
"""

from .loop import BatchSampler, RunConfig, load_checkpoint, train
from .problems import Problem, problem, problems

__all__ = ["BatchSampler", "Problem", "RunConfig", "load_checkpoint", "problem", "problems", "train"]
