"""The lab: test surfaces, trajectories, training problems, benchmarks and reports.

Needs the ``lab`` extra (matplotlib, scikit-learn, tqdm): ``pip install optzoo[lab]``.
"""
