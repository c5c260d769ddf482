"""``camfix demo``: the paper's ablation, end to end, on a built-in synthetic benchmark (CPU, minutes).

- :mod:`camfix.demo.data`: the synthetic WSOL benchmark (images, exact masks and boxes, from a seed; train,
  held-out and evaluation splits).
- :mod:`camfix.demo.train`: reproducible CPU training of the classifiers.
- :mod:`camfix.demo.ablation`: the fixes without the CRF and the five rows of the LID 2020 Table 1, each at an
  operating point chosen on the held-out split, scored on the evaluation split.
- :mod:`camfix.demo.diagnostics`: where the classifiers' maps put their mass.
- :mod:`camfix.demo.plots`: the pictures (matplotlib, the ``demo`` extra).
- :mod:`camfix.demo.pipeline`: everything in order (:func:`run_demo`); :mod:`camfix.demo.cli`: the command.
- :mod:`camfix.demo.summary`: every seed, mean and spread of several runs.
"""

from camfix.demo.data import CLASS_NAMES, SyntheticWSOL, make_dataset
from camfix.demo.pipeline import DEFAULT, QUICK, DemoConfig, DemoResult, run_demo

__all__ = ["CLASS_NAMES", "DEFAULT", "QUICK", "DemoConfig", "DemoResult", "SyntheticWSOL", "make_dataset", "run_demo"]
