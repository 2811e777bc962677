"""LeNet-5 on Fashion-MNIST pruned gradually to 2:4 by GMP (tools/recipe.py).

Dense start (all-ones masks that record the pattern), Zhu & Gupta's cubic
ramp to sparsity 0.5 = 1 - 2/4 over the first 70% of training with an
update every 5% (and one at the end), cosine learning rate. The schedule
acts on the N:M groups: each update keeps the k largest |w| of every group
of 4 along the input axis, k = max(2, floor(4 (1 - s(t)) + 1/2)): 4, then
3, then 2 (`tf_sparse.recipes.n_m_ramp` lists the steps). LeNet-5's first
convolution has one input channel, not a multiple of 4, and stays dense
(listed by tfs.summary).
"""

from tf_sparse import recipes


def get_config():
    c = recipes.default_config()
    c.model = "lenet5_caffe"
    c.algorithm = "gmp"
    c.pattern = "2:4"
    c.sparsity = 0.5
    c.epochs = 2
    c.learning_rate = 0.05
    c.algorithm_kwargs.scope = "layerwise"
    return c
