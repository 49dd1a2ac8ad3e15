"""Statistics for comparing selection methods on the same held-out items (:mod:`mdaq.stats.paired`) and the power
analysis that sizes a study (:mod:`mdaq.stats.power`). Pure numpy / pandas / scipy: any package may import it."""

from mdaq.stats.paired import (
    compare_table,
    holm,
    indistinguishable_groups,
    paired_bootstrap_ci,
    paired_compare,
    ratio_nll,
    seed_average,
    sign_test,
)
from mdaq.stats.power import mdd_paired_binary, mdd_paired_continuous, n_paired_binary, simulated_power

__all__ = [
    "compare_table",
    "holm",
    "indistinguishable_groups",
    "mdd_paired_binary",
    "mdd_paired_continuous",
    "n_paired_binary",
    "paired_bootstrap_ci",
    "paired_compare",
    "ratio_nll",
    "seed_average",
    "sign_test",
    "simulated_power",
]
