"""History-conditioned policies as a single-layer transformer (paper Fig. 7), in JAX.

An optional part of edgewalk: it needs ``pip install 'edgewalk[transformer]'`` (jax, optax); the
rest of the package never imports it.
"""

try:
    import jax  # noqa: F401
    import optax  # noqa: F401
except ImportError as error:  # pragma: no cover - depends on the installation
    raise ImportError("edgewalk.transformer needs JAX and optax: pip install 'edgewalk[transformer]'") from error

from .model import Config, init_parameters, table_logits
from .ppo import train_transformer
from .rollouts import Samples, TransformerPolicy, from_training

__all__ = ["Config", "Samples", "TransformerPolicy", "from_training", "init_parameters", "table_logits",
           "train_transformer"]
