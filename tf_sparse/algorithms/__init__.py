"""Mask-update algorithms, selectable by name.

Example:

    algorithm = tfs.algorithms.get("static")
"""

from tf_sparse.algorithms.base import MaskAlgorithm
from tf_sparse.algorithms.static import Static

_REGISTRY = {
    "static": Static,
}


def names():
    """The algorithm names `get` accepts."""
    return sorted(_REGISTRY)


def register(name, cls):
    """Makes a `MaskAlgorithm` subclass selectable by name."""
    if not (isinstance(cls, type) and issubclass(cls, MaskAlgorithm)):
        raise TypeError(f"{cls!r} is not a MaskAlgorithm subclass.")
    _REGISTRY[name] = cls


def get(name, **kwargs):
    """An algorithm instance by name, e.g. `get("static")`."""
    if name not in _REGISTRY:
        raise ValueError(
            f"Unknown algorithm {name!r}; accepted: {', '.join(names())}.")
    return _REGISTRY[name](**kwargs)
