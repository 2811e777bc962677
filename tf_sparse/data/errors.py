"""Errors raised by the data loaders.

Example:

    >>> from tf_sparse.data import DataNotFoundError, load_cifar10_arrays
    >>> try:
    ...     load_cifar10_arrays("/nonexistent")
    ... except FileNotFoundError as err:
    ...     print(type(err).__name__, "cifar-10-batches-py" in str(err))
    DataNotFoundError True
"""


class DataNotFoundError(FileNotFoundError):
    """A data set's files are not where the loader looked.

    A subclass of `FileNotFoundError`, so code that already catches that keeps
    working. The message names the places searched, the files expected there and
    how to get them.
    """


class UnsafePickleError(ValueError):
    """A pickle asked for something other than plain data and numpy arrays.

    Raised by `tf_sparse.data.safe_pickle.load_plain_pickle` before anything the
    pickle names is called. A ValueError: the file is not what it claims to be.
    """
