"""Tests of the model zoo: exact parameter counts, forward passes, registry.

Reference counts: papers.md A.3 (sparse_learning definitions, confirmed for
ResNet-50 by the authors' logs) and B.4 / open_lth's own unit tests
(ResNet-20 272,474; VGG-16 14,728,266; VGG-19 20,040,522). The masked
counts of the open_lth models are derived from their definitions: total
minus BatchNorm gamma/beta and conv/FC biases.
"""

import functools

import keras
import numpy as np
import pytest

from tf_sparse.models import (MODEL_NAMES, bottleneck_resnet, cifar_resnet,
                              cifar_vgg, count_parameters, get_model,
                              masked_weights, resnet50, wrn)

# name: (masked, total trainable, input shape, number of classes)
REFERENCE = {
    "lenet300_100": (266_200, 266_610, (28, 28, 1), 10),
    "lenet5_caffe": (430_500, 431_080, (28, 28, 1), 10),
    "alexnet_s": (5_066_784, 5_077_066, (32, 32, 3), 10),
    "alexnet_b": (8_484_896, 8_501_322, (32, 32, 3), 10),
    "vgg16_c": (11_307_712, 11_323_466, (32, 32, 3), 10),
    "vgg16_d": (15_239_872, 15_255_626, (32, 32, 3), 10),
    "vgg16_like": (14_977_728, 14_991_946, (32, 32, 3), 10),
    "wrn16_8": (10_954_160, 10_961_370, (32, 32, 3), 10),
    "wrn16_10": (17_107_632, 17_116_634, (32, 32, 3), 10),
    "wrn22_8": (17_147_312, 17_158_106, (32, 32, 3), 10),
    "wrn28_2": (1_463_984, 1_467_610, (32, 32, 3), 10),
    "resnet50": (25_502_912, 25_557_032, (224, 224, 3), 1000),
    # open_lth: totals from its tests, masked derived.
    "resnet20": (270_896, 272_474, (32, 32, 3), 10),
    "vgg16_lmc": (14_715_584, 14_728_266, (32, 32, 3), 10),
    "vgg19": (20_024_000, 20_040_522, (32, 32, 3), 10),
    # The recipes' small ViT (tf_sparse/models/vit.py; no reference code).
    "vit_tiny": (134_848, 138_890, (28, 28, 1), 10),
}

# First and last masked layer of each model (the layers users usually keep
# dense), to keep layer names stable.
FIRST_LAST = {
    "lenet300_100": ("fc1", "fc3"),
    "lenet5_caffe": ("conv1", "fc4"),
    "alexnet_s": ("conv1", "fc3"),
    "alexnet_b": ("conv1", "fc3"),
    "vgg16_c": ("block1_conv1", "fc3"),
    "vgg16_d": ("block1_conv1", "fc3"),
    "vgg16_like": ("block1_conv1", "fc2"),
    "vgg19": ("block1_conv1", "fc"),
    "vgg16_lmc": ("block1_conv1", "fc"),
    "wrn16_8": ("conv1", "fc"),
    "wrn16_10": ("conv1", "fc"),
    "wrn22_8": ("conv1", "fc"),
    "wrn28_2": ("conv1", "fc"),
    "resnet20": ("conv1", "fc"),
    "resnet50": ("conv1", "fc"),
    "vit_tiny": ("patch_embed", "head"),
}


@functools.lru_cache(maxsize=None)
def built(name):
    """Each zoo model is built once per test session."""
    keras.utils.set_random_seed(0)
    return get_model(name)


def test_registry_lists_every_reference_model():
    assert set(MODEL_NAMES) == set(REFERENCE)
    assert len(MODEL_NAMES) == len(set(MODEL_NAMES))


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_parameter_counts_match_reference(name):
    masked, trainable, _, _ = REFERENCE[name]
    counts = count_parameters(built(name))
    assert counts["masked"] == masked
    assert counts["total_trainable"] == trainable
    # Only BatchNorm moving statistics are non-trainable, and there is one
    # mean and one variance per gamma.
    model = built(name)
    non_trainable = counts["total"] - counts["total_trainable"]
    layer_norm = {id(layer.gamma) for layer in model._flatten_layers()
                  if isinstance(layer, keras.layers.LayerNormalization)}
    gammas = sum(int(np.prod(w.shape)) for w in model.trainable_weights
                 if w.name == "gamma" and id(w) not in layer_norm)
    assert non_trainable == 2 * gammas
    assert all(w.name in ("moving_mean", "moving_variance")
               for w in model.non_trainable_weights)


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_forward_pass_shape(name):
    _, _, input_shape, classes = REFERENCE[name]
    model = built(name)
    assert tuple(model.input_shape[1:]) == input_shape
    x = np.random.default_rng(0).random((2, *input_shape), dtype=np.float32)
    y = keras.ops.convert_to_numpy(model(x, training=False))
    assert y.shape == (2, classes)
    assert np.all(np.isfinite(y))


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_first_and_last_masked_layer_names(name):
    layers = [w.path.split("/")[-2] for w in masked_weights(built(name))]
    assert (layers[0], layers[-1]) == FIRST_LAST[name]
    model = built(name)
    assert model.name == name
    model.get_layer(FIRST_LAST[name][0])  # raises if absent


def test_training_mode_forward_with_dropout():
    model = built("wrn28_2")
    dropouts = [l for l in model.layers
                if isinstance(l, keras.layers.Dropout)]
    assert len(dropouts) == 12 and all(l.rate == 0.3 for l in dropouts)
    x = np.random.default_rng(1).random((2, 32, 32, 3), dtype=np.float32)
    y = keras.ops.convert_to_numpy(model(x, training=True))
    assert y.shape == (2, 10) and np.all(np.isfinite(y))


def test_wrn_without_dropout_has_same_counts():
    model = wrn(16, 1, dropout_rate=0.0)
    assert not any(isinstance(l, keras.layers.Dropout) for l in model.layers)
    # WRN-16-1 has no width change in stage 1: identity shortcuts there.
    assert "stage1_block1_shortcut" not in [l.name for l in model.layers]
    assert "stage2_block1_shortcut" in [l.name for l in model.layers]


def test_num_classes_and_kwargs_pass_through_registry():
    model = get_model("resnet20", num_classes=100, name="r20_c100")
    assert model.output_shape == (None, 100)
    assert model.name == "r20_c100"
    model = get_model("lenet5_caffe", num_classes=3)
    assert count_parameters(model)["masked"] == 430_500 - 7 * 500


def test_resnet50_smaller_input_same_counts():
    small = resnet50(input_shape=(64, 64, 3))
    assert count_parameters(small) == count_parameters(built("resnet50"))
    y = small(np.zeros((2, 64, 64, 3), np.float32), training=False)
    assert tuple(y.shape) == (2, 1000)


def test_pytorch_padding_semantics():
    # AlexNet's strided convs end at 1x1x256 on CIFAR (FC input 256).
    alex = built("alexnet_s")
    assert alex.get_layer("flatten").output.shape[-1] == 256
    # VGG16-C's 1x1 convs keep padding 1: classifier input 2048.
    assert built("vgg16_c").get_layer("flatten").output.shape[-1] == 2048
    assert built("vgg16_d").get_layer("flatten").output.shape[-1] == 512
    # ResNet-50: 112x112 after conv1, 56x56 after the padded max pool.
    rn = built("resnet50")
    assert tuple(rn.get_layer("conv1").output.shape[1:3]) == (112, 112)
    assert tuple(rn.get_layer("maxpool").output.shape[1:3]) == (56, 56)
    assert rn.get_layer("layer4_block1_conv2").strides == (2, 2)  # v1.5
    assert rn.get_layer("layer4_block1_conv1").strides == (1, 1)
    assert all(not l.use_bias for l in rn.layers
               if isinstance(l, keras.layers.Conv2D))


def test_initialisations_follow_references():
    # torchvision ResNet conv: Kaiming normal, fan-out.
    k = keras.ops.convert_to_numpy(
        built("resnet50").get_layer("conv1").kernel)
    assert np.std(k) == pytest.approx(np.sqrt(2 / (7 * 7 * 64)), rel=0.05)
    # WRN conv: N(0, 2 / (k*k*out)).
    k = keras.ops.convert_to_numpy(
        built("wrn16_8").get_layer("stage3_block2_conv2").kernel)
    assert np.std(k) == pytest.approx(np.sqrt(2 / (9 * 512)), rel=0.05)
    # open_lth: Kaiming normal fan-in, BN gamma ~ U(0, 1).
    vgg = built("vgg19")
    k = keras.ops.convert_to_numpy(vgg.get_layer("block5_conv4").kernel)
    assert np.std(k) == pytest.approx(np.sqrt(2 / (9 * 512)), rel=0.05)
    g = keras.ops.convert_to_numpy(vgg.get_layer("block5_bn4").gamma)
    assert g.min() >= 0 and g.max() < 1 and 0.35 < g.mean() < 0.65
    # sparse_learning LeNet: PyTorch default U(-1/sqrt(fan_in), +).
    k = keras.ops.convert_to_numpy(built("lenet300_100").get_layer("fc1").kernel)
    assert np.abs(k).max() <= 1 / np.sqrt(784)
    assert np.abs(k).max() > 0.95 / np.sqrt(784)


def test_unknown_name_raises_with_accepted_names():
    with pytest.raises(ValueError) as err:
        get_model("resnet1000")
    message = str(err.value)
    assert "resnet1000" in message
    for name in MODEL_NAMES:
        assert name in message
    with pytest.raises(ValueError):
        get_model(None)


def test_aliases_and_normalisation():
    assert get_model("LeNet300-100").name == "lenet300_100"
    assert get_model("cifar_resnet_20").name == "resnet20"
    assert count_parameters(get_model("lenet5"))["masked"] == 430_500


@pytest.mark.parametrize("call", [
    lambda: get_model("lenet300_100", num_classes=0),
    lambda: wrn(15, 8),
    lambda: wrn(16, 0),
    lambda: cifar_resnet(21),
    lambda: cifar_vgg(17),
    lambda: bottleneck_resnet((3, 4, 6)),
])
def test_invalid_arguments_raise_value_error(call):
    with pytest.raises(ValueError):
        call()


def test_cifar_resnet_family_matches_open_lth():
    # Totals from open_lth's models/test/test_cifar_resnet.py.
    assert count_parameters(cifar_resnet(110))["total_trainable"] == 1_730_714
    assert count_parameters(cifar_resnet(14, 128))["total_trainable"] \
        == 11_093_130
    assert count_parameters(cifar_vgg(11))["total_trainable"] == 9_231_114
    assert count_parameters(cifar_vgg(13))["total_trainable"] == 9_416_010


def test_count_parameters_other_layer_types_and_nesting():
    inner = keras.Sequential([
        keras.Input((8, 8, 4)),
        keras.layers.DepthwiseConv2D(3, name="dw"),          # 3*3*4 = 36
        keras.layers.SeparableConv2D(6, 3, name="sep"),      # 36 + 24
        keras.layers.BatchNormalization(name="bn"),
        keras.layers.GlobalAveragePooling2D(),
    ], name="inner")
    shared = keras.layers.EinsumDense("ab,bc->ac", output_shape=5,
                                      name="einsum")         # 6*5 = 30
    inputs = keras.Input((8, 8, 4))
    features = inner(inputs)
    outputs = keras.layers.Add()([shared(features), shared(features)])
    model = keras.Model(inputs, outputs)
    counts = count_parameters(model)
    assert counts["masked"] == 36 + 36 + 24 + 30
    # + depthwise bias 4, separable bias 6, BN gamma/beta 12.
    assert counts["total_trainable"] == counts["masked"] + 4 + 6 + 12
    assert counts["total"] == counts["total_trainable"] + 12


def test_models_serialise_as_plain_keras(tmp_path):
    model = built("resnet20")
    path = tmp_path / "resnet20.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    x = np.random.default_rng(2).random((2, 32, 32, 3), dtype=np.float32)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(restored(x, training=False)),
        keras.ops.convert_to_numpy(model(x, training=False)),
        rtol=1e-5, atol=1e-5)
    assert count_parameters(restored) == count_parameters(model)
