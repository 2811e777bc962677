"""Mask-update algorithms, selectable by name.

Example:

    algorithm = tfs.algorithms.get("static")
    algorithm = tfs.algorithms.get("sparse_momentum", total_steps=T,
                                   steps_per_epoch=600)
    algorithm = tfs.algorithms.from_params("rigl", {"update_every": 50},
                                           steps_per_epoch=600,
                                           total_steps=T)
    cls = tfs.algorithms.get_class("gmp")   # the class, e.g. to inspect it

Modules: `base` (the interface), `prune_grow` (the prune-and-grow engine)
with `update_schedules`, `redistribution`, `optimizer_state` and
`monitoring`; `magnitude` (GMP and AC/DC masks); `checks`; one module per
algorithm. Exact selection is `tf_sparse.topk`.
"""

from tf_sparse.algorithms.base import MaskAlgorithm
from tf_sparse.algorithms.static import Static
from tf_sparse.algorithms.prune_grow import PruneGrow
from tf_sparse.algorithms.rigl import RigL
from tf_sparse.algorithms.set import SET
from tf_sparse.algorithms.snip import SNIP
from tf_sparse.algorithms.sparse_momentum import SparseMomentum
from tf_sparse.algorithms.gmp import GMP
from tf_sparse.algorithms.acdc import ACDC
from tf_sparse.algorithms.sr_ste import SRSTE

#: Keys of `config.algorithm_params` (tools/train.py configs); each
#: algorithm's `from_params` says which it uses.
CONFIG_PARAMS = (
    "drop_fraction", "final_drop_fraction", "decay", "update_every",
    "update_begin", "update_end", "growth", "redistribution",
    "momentum_source", "regrow_dropped", "grow_init", "grown_slots",
    "dropped_slots", "gradient_source", "skip_gradient_step",
    "snip_batch_size",
)

_REGISTRY = {
    "static": Static,
    "sparse_momentum": SparseMomentum,
    "set": SET,
    "rigl": RigL,
    "snip": SNIP,
    "gmp": GMP,
    "acdc": ACDC,
    "sr_ste": SRSTE,
}


def names():
    """The algorithm names `get` accepts."""
    return sorted(_REGISTRY)


def register(name, cls):
    """Makes a `MaskAlgorithm` subclass selectable by name."""
    if not (isinstance(cls, type) and issubclass(cls, MaskAlgorithm)):
        raise TypeError(f"{cls!r} is not a MaskAlgorithm subclass.")
    _REGISTRY[name] = cls


def get_class(name):
    """The registered `MaskAlgorithm` subclass called `name`."""
    if name not in _REGISTRY:
        raise ValueError(
            f"Unknown algorithm {name!r}; accepted: {', '.join(names())}.")
    return _REGISTRY[name]


def get(name, **kwargs):
    """An algorithm instance by name, e.g. `get("static")`."""
    return get_class(name)(**kwargs)


def from_params(name, params=None, *, steps_per_epoch, total_steps, seed=0):
    """An algorithm from a config: name plus a dict of hyperparameters.

    Parameters that are None take the algorithm's (paper's) default; a
    parameter the algorithm does not use is an error. Classes without a
    `from_params` classmethod get the parameters as keyword arguments.
    """
    cls = get_class(name)
    builder = getattr(cls, "from_params", None)
    if builder is not None:
        return builder(params, steps_per_epoch=steps_per_epoch,
                       total_steps=total_steps, seed=seed)
    return cls(**{k: v for k, v in dict(params or {}).items()
                  if v is not None})
