"""The papers' model zoo as plain Keras 3 functional models.

Every builder returns an uncompiled `keras.Model` made of standard
`keras.layers` only, outputs logits, and takes `num_classes`,
`input_shape` and `name`. Parameter counts reproduce the reference PyTorch
definitions exactly (see `count_parameters`).

Example:

    from tf_sparse.models import get_model, count_parameters
    model = get_model("resnet20")
    count_parameters(model)["total_trainable"]  # 272474
"""

from tf_sparse.models.alexnet import alexnet, alexnet_b, alexnet_s
from tf_sparse.models.cifar_resnet import cifar_resnet, resnet20
from tf_sparse.models.counting import count_parameters, masked_weights
from tf_sparse.models.lenet import lenet5_caffe, lenet300_100
from tf_sparse.models.registry import MODEL_NAMES, get_model
from tf_sparse.models.resnet import bottleneck_resnet, resnet50
from tf_sparse.models.vgg import (cifar_vgg, vgg16_c, vgg16_d, vgg16_like,
                                  vgg16_lmc, vgg16_snip, vgg19)
from tf_sparse.models.wrn import wrn, wrn16_8, wrn16_10, wrn22_8, wrn28_2

__all__ = [
    "MODEL_NAMES", "get_model", "count_parameters", "masked_weights",
    "lenet300_100", "lenet5_caffe", "alexnet", "alexnet_s", "alexnet_b",
    "vgg16_snip", "vgg16_c", "vgg16_d", "vgg16_like", "cifar_vgg", "vgg19",
    "vgg16_lmc", "wrn", "wrn16_8", "wrn16_10", "wrn22_8", "wrn28_2",
    "cifar_resnet", "resnet20", "bottleneck_resnet", "resnet50",
]
