"""tf-sparse: sparse training for Keras 3 on TensorFlow.

Example:

    import keras
    import tf_sparse as tfs

    model = tfs.sparsify(model, sparsity=0.95, distribution="erk")
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
                  loss="sparse_categorical_crossentropy")
    model.fit(x, y, callbacks=[tfs.callbacks.MaskUpdate(tfs.algorithms.Static())])
    print(tfs.summary(model))
    plain = tfs.strip(model)

Importing tf_sparse sets no environment variables and changes no global
TensorFlow or Keras state.
"""

from tf_sparse import algorithms
from tf_sparse import callbacks
from tf_sparse import channel_graph
from tf_sparse import checkpoints
from tf_sparse import data
from tf_sparse import diagnostics
from tf_sparse import distillation
from tf_sparse import distributions
from tf_sparse import export
from tf_sparse import flops
from tf_sparse import masking
from tf_sparse import models
from tf_sparse import schedules
from tf_sparse import sparse_compute
from tf_sparse import speedup
from tf_sparse import training
from tf_sparse import undertraining
from tf_sparse.diagnostics import summary
from tf_sparse.export import strip
from tf_sparse.masking import apply_masks
from tf_sparse.masking import is_sparse
from tf_sparse.masking import masked_weights
from tf_sparse.registry import register_prunable
from tf_sparse.saving import load_model
from tf_sparse.saving import save_model
from tf_sparse.shrinking import shrink
from tf_sparse.sparsification import sparsify
from tf_sparse.sparsification import unsparsify
from tf_sparse.version import __version__
