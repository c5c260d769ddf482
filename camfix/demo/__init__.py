"""``camfix demo``: the paper's ablation, end to end, on a built-in synthetic benchmark (CPU, minutes).

- :mod:`camfix.demo.data`: the synthetic WSOL benchmark (images, exact masks and boxes, from a seed).
- :mod:`camfix.demo.train`: reproducible CPU training of the classifiers.
- :mod:`camfix.demo.ablation`: the five rows of the LID 2020 Table 1 (and the fixes without the CRF), scored.
- :mod:`camfix.demo.diagnostics`: where the classifiers' maps put their mass.
- :mod:`camfix.demo.plots`: the pictures (matplotlib, the ``demo`` extra).
- :mod:`camfix.demo.pipeline`: everything in order (:func:`run_demo`); :mod:`camfix.demo.cli`: the command.
- :mod:`camfix.demo.summary`: mean and spread of several runs.
"""

from camfix.demo.data import CLASS_NAMES, SyntheticWSOL, make_dataset
from camfix.demo.pipeline import DEFAULT, QUICK, DemoConfig, DemoResult, run_demo

__all__ = ["CLASS_NAMES", "DEFAULT", "QUICK", "DemoConfig", "DemoResult", "SyntheticWSOL", "make_dataset", "run_demo"]
