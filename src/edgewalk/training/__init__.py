"""Post-training of softmax policies (docs/model.md section 5).

- :mod:`.parametrisation`: logits per CSR entry, tied parameters, the a, b, c, d readout;
- :mod:`.objectives`: the SFT cross-entropy and the RLVR return, with exact gradients;
- :mod:`.optimisers`: sign ascent, gradient descent, Adam;
- :mod:`.loop`: the loop the gradient methods share, and the training record;
- :mod:`.methods`: the methods and ``METHODS``, the one table of their defaults;
- :mod:`.experiments`: partial supervision, the confused middle, the tabular RLVR optimum.
"""

from ..exact import ExactSolver
from ..policy import from_logits as policy_from_logits
from ..policy import softmax_rows
from ..result import TrainingRun
from .experiments import (GradientSigns, SupervisionSweep, initial_gradient_signs,
                          partial_supervision_sweep, rlvr_optimum)
from .methods import (METHODS, TRAINERS, Method, iteration_seed, teacher_traces, train_distill, train_ppo, train_pretrain, train_rft,
                      train_rlvr, train_rlvr_mc, train_sft)
from .objectives import (backward_supervision, cross_entropy_gradient, golden_counts, rlvr_gradient,
                         rlvr_objective, sft_gradient, sft_loss)
from .parametrisation import (BACKWARD_KINDS, PARAMETRISATIONS, DepthParameters, Parametrisation, Tying,
                              pretrained_logits, trained_entries, tying)

__all__ = [
    "BACKWARD_KINDS", "DepthParameters", "ExactSolver", "GradientSigns", "METHODS", "Method", "PARAMETRISATIONS",
    "Parametrisation", "SupervisionSweep", "TRAINERS", "TrainingRun", "Tying",
    "backward_supervision", "cross_entropy_gradient", "golden_counts", "initial_gradient_signs",
    "iteration_seed", "partial_supervision_sweep", "teacher_traces", "policy_from_logits", "pretrained_logits",
    "rlvr_gradient", "rlvr_objective", "rlvr_optimum", "sft_gradient", "sft_loss", "softmax_rows",
    "train_distill", "train_ppo", "train_pretrain", "train_rft", "train_rlvr", "train_rlvr_mc",
    "train_sft", "trained_entries",
    "tying",
]
