"""The mask-update algorithm of a run, by registry name.

`make(config, plan)` returns `None` for `algorithm="dense"` (no masks) and
otherwise the registered algorithm (`tf_sparse.algorithms.get_class`):

- algorithms with a `from_params` classmethod (sparse momentum, SET, RigL,
  SNIP) take `config.algorithm_params` (None values: the paper's default);
- any other registered class takes `config.algorithm_kwargs` as constructor
  arguments, plus `total_steps`, `steps_per_epoch` and `seed` when its
  constructor names them and the config does not set them, and, for the
  gradual algorithms (GMP, AC/DC), the target `config.sparsity`. So a newly
  registered algorithm needs no change here.

Example:

    algorithm = make(config, plan)     # None for a dense run
"""

import inspect

from tf_sparse import algorithms

#: Algorithms that start from all-ones masks and prune towards a target:
#: name -> the constructor argument that takes `config.sparsity`. (SR-STE
#: starts from all-ones N:M-recording masks and projects its dense weights.)
GRADUAL = {"gmp": "final_sparsity", "acdc": "sparsity", "sr_ste": "sparsity"}


def is_gradual(config):
    return config.algorithm in GRADUAL


def make(config, plan):
    """The configured algorithm for a run of `plan` (None: dense)."""
    name = config.algorithm
    if name == "dense":
        if config.sparsity:
            raise ValueError(
                f"algorithm='dense' trains without masks, but sparsity="
                f"{config.sparsity}; set sparsity=0.0 or choose an algorithm "
                f"({', '.join(algorithms.names())})")
        return None
    if name not in algorithms.names():
        raise ValueError(f"Unknown algorithm {name!r}; accepted: dense, "
                         f"{', '.join(algorithms.names())}.")
    cls = algorithms.get_class(name)
    params = {k: v for k, v in config.algorithm_params.to_dict().items()
              if v is not None}
    kwargs = dict(config.algorithm_kwargs.to_dict())
    if hasattr(cls, "from_params"):
        if kwargs:
            raise ValueError(f"algorithm {name!r} is configured by "
                             f"algorithm_params, not algorithm_kwargs="
                             f"{kwargs!r}")
        return algorithms.from_params(
            name, params, steps_per_epoch=plan.steps_per_epoch,
            total_steps=plan.total_steps, seed=config.seed)
    if params:
        raise ValueError(f"algorithm {name!r} takes algorithm_kwargs (its "
                         f"constructor arguments), not algorithm_params="
                         f"{params!r}")
    if name in GRADUAL:
        kwargs.setdefault(GRADUAL[name], config.sparsity)
    signature = inspect.signature(cls).parameters
    context = {"total_steps": plan.total_steps,
               "steps_per_epoch": plan.steps_per_epoch, "seed": config.seed}
    for key, value in context.items():
        if key in signature and key not in kwargs:
            kwargs[key] = value
    try:
        return algorithms.get(name, **kwargs)
    except TypeError as err:
        raise ValueError(f"algorithm {name!r} does not accept "
                         f"algorithm_kwargs={kwargs!r}: {err}") from err
