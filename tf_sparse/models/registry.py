"""Look up zoo models by name.

Canonical names are listed in `MODEL_NAMES`. Lookup ignores case and treats
"-" like "_"; the model names used by the reference code bases
(sparse_learning's `--model` values, open_lth's `cifar_resnet_20` etc.) are
accepted as aliases.

Example:

    model = get_model("wrn16_8", num_classes=100)
    model = get_model("WRN-16-8")           # same network, 10 classes
"""

from tf_sparse.models.alexnet import alexnet_b, alexnet_s
from tf_sparse.models.cifar_resnet import resnet20
from tf_sparse.models.lenet import lenet5_caffe, lenet300_100
from tf_sparse.models.resnet import resnet50
from tf_sparse.models.vit import vit_tiny
from tf_sparse.models.vgg import vgg16_c, vgg16_d, vgg16_like, vgg16_lmc, vgg19
from tf_sparse.models.wrn import wrn16_8, wrn16_10, wrn22_8, wrn28_2

_BUILDERS = {
    "lenet300_100": lenet300_100,
    "lenet5_caffe": lenet5_caffe,
    "alexnet_s": alexnet_s,
    "alexnet_b": alexnet_b,
    "vgg16_c": vgg16_c,
    "vgg16_d": vgg16_d,
    "vgg16_like": vgg16_like,
    "vgg19": vgg19,
    "vgg16_lmc": vgg16_lmc,
    "wrn16_8": wrn16_8,
    "wrn16_10": wrn16_10,
    "wrn22_8": wrn22_8,
    "wrn28_2": wrn28_2,
    "resnet20": resnet20,
    "resnet50": resnet50,
    "vit_tiny": vit_tiny,
}

MODEL_NAMES = tuple(_BUILDERS)

# Reference code-base names (after normalisation) -> canonical names.
ALIASES = {
    "lenet300_100": "lenet300_100",
    "lenet_300_100": "lenet300_100",
    "mnist_lenet_300_100": "lenet300_100",
    "lenet5": "lenet5_caffe",
    "vgg_c": "vgg16_c",
    "vgg_d": "vgg16_d",
    "vgg_like": "vgg16_like",
    "cifar_vgg_19": "vgg19",
    "cifar_vgg_16": "vgg16_lmc",
    "wrn_16_8": "wrn16_8",
    "wrn_16_10": "wrn16_10",
    "wrn_22_8": "wrn22_8",
    "wrn_28_2": "wrn28_2",
    "cifar_resnet_20": "resnet20",
}


def _normalise(name):
    return name.strip().lower().replace("-", "_")


def get_model(name, /, **kwargs):
    """Builds the zoo model `name`; `kwargs` go to its builder.

    `name` is positional-only, so `get_model("resnet20", name="r20")` names
    the Keras model "r20".

    Every builder accepts `num_classes`, `input_shape` and `name`; WRNs also
    `dropout_rate` and ResNet-50 `zero_init_residual`. `"hub:<family>"`
    builds a keras-hub model (`tf_sparse.models.hub.get_model`: "hub:bert",
    "hub:vit", ...; `vocab_size`, `preset` and config changes as kwargs).

    Raises:
      ValueError: for an unknown name (the message lists the known ones).
    """
    if not isinstance(name, str):
        raise ValueError(f"Model name must be a string, got {name!r}")
    if name.startswith("hub:"):
        from tf_sparse.models import hub  # keras-hub only when asked for
        return hub.get_model(name[len("hub:"):], **kwargs)
    key = _normalise(name)
    key = ALIASES.get(key, key)
    if key not in _BUILDERS:
        raise ValueError(f"Unknown model name {name!r}. Accepted names: "
                         f"{', '.join(MODEL_NAMES)}.")
    return _BUILDERS[key](**kwargs)
