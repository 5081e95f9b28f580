"""The scaling study: hitting times over a star grid of W, K and L, growth fits, the paper's bounds.

- :mod:`.variants`: the six variants, their policies and stated bounds;
- :mod:`.grid`: the star grid, cell names and seeds;
- :mod:`.fits`: growth fits and their verdicts against the bounds;
- :mod:`.sweep`: planning and running a sweep, the Study it makes, Monte Carlo against exact.

The study file is written and read by :mod:`edgewalk.io.study`.
"""

from .fits import (EXACT_SLACK, EXPONENT_TOLERANCE, LEVEL, Fit, LineFit, PowerFit, fit_growth,
                   fit_line, fit_power, fit_study)
from .grid import PARAMETERS, Grid, cell_seed, parse_list, run_name
from ..statistics import bonferroni_threshold
from .sweep import (Cell, Comparison, PlannedCell, Study, assemble,
                    check_grid_size, check_variants, compare_with_exact, grid_of, plan_cells, study_parameters, sweep)
from .topology import FamilyGrid, GrowthFit, TopologyCell, TopologyStudy, sweep_family
from .variants import (DEFAULT_VARIANTS, DISTILLED_NOTE, POLICY_SOURCES, PRETRAINED_FORMULA, THETA_W_L_K, THETA_WK,
                       THETA_WKL, VARIANTS, Bound, Variant, training_settings, variant_policies)

__all__ = [
    "Bound", "Cell", "DEFAULT_VARIANTS", "Comparison", "FamilyGrid", "GrowthFit", "TopologyCell", "TopologyStudy", "sweep_family", "DISTILLED_NOTE", "EXACT_SLACK", "EXPONENT_TOLERANCE", "Fit",
    "Grid", "LEVEL", "LineFit", "PARAMETERS", "POLICY_SOURCES", "PRETRAINED_FORMULA",
    "PlannedCell", "PowerFit", "Study", "THETA_WK", "THETA_WKL", "THETA_W_L_K", "VARIANTS",
    "Variant", "assemble", "bonferroni_threshold", "cell_seed", "check_grid_size", "check_variants",
    "compare_with_exact", "fit_growth", "fit_line", "fit_power", "fit_study", "grid_of",
    "parse_list", "plan_cells", "run_name", "study_parameters", "sweep", "training_settings",
    "variant_policies",
]
