"""The version of tf_sparse (`tfs.__version__`)."""

__version__ = "0.1.0"
