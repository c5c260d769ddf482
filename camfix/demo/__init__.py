"""``camfix demo``: the paper's ablation, end to end, on a built-in synthetic benchmark (CPU, minutes)."""
