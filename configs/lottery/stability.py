"""Stability / instability analysis of a lottery run (tools/stability.py).

Where the numbers come from: Frankle et al. 2019 ("Stabilizing the LTH",
section 3: L2 distance over the masked weights, angle in appendix B) and
Frankle et al. 2020 (LMC: error barrier over 30 evenly spaced points, stable
below 2%); ../shared/reference/papers.md B.2, B.3. The papers use 3 x 3
samples per point; this config trains 2 copies per subnetwork by default
(--config.copies=3 for three data orders).
"""

from tf_sparse.lottery import stability


def get_config():
    c = stability.default_config()
    c.levels = (0, 5, 10, 15)
    c.kinds = ("imp", "random")
    c.copies = 2
    c.alphas = 30
    c.barrier = True
    c.pruning = True
    c.rewind_points = ()
    return c
