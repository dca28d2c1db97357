"""The lab, in rooms: ``surfaces`` (test functions and the optimizers' paths on them), ``training``
(real offline problems, the training loop and the runs), ``reporting`` (pictures and the HTML page) and
``cli`` (one module per ``optzoo`` command).

Needs the ``lab`` extra (matplotlib, scikit-learn, tqdm): ``pip install optzoo[lab]``.
"""
