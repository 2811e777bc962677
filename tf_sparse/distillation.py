"""Knowledge distillation from a dense teacher, usable with any algorithm.

`Distiller(student, teacher)` is a Keras model whose forward pass is the
student's and whose training loss mixes the hard loss on the labels with
the soft loss on the teacher's temperature-softened outputs (Hinton et al.
2015):

    loss = (1 - alpha) * hard(y, s) + alpha * T**2 * KL(softmax(t / T) || softmax(s / T))

`s` and `t` are the student's and the teacher's logits. The `T**2` factor
keeps the soft gradients on the scale of the hard ones. Evaluation
(`evaluate`, validation during `fit`) reports the hard loss only, so a
distilled run's validation loss compares directly with an undistilled one.

The student is sparsified first; a mask-update algorithm is attached to the
`Distiller` like to any model (the masks are found through the student), and
the teacher is frozen and run in inference mode. After training, use
`distiller.student` (save it with `tfs.save_model`).

Example:

    student = tfs.sparsify(get_model("vit_tiny"), sparsity=0.0)
    distiller = tfs.distillation.Distiller(student, teacher, temperature=4.0,
                                           alpha=0.5)
    distiller.compile(optimizer="adam",
                      loss=keras.losses.SparseCategoricalCrossentropy(
                          from_logits=True), metrics=["accuracy"])
    distiller.fit(x, y, callbacks=[tfs.callbacks.MaskUpdate(gmp)])
    tfs.save_model(distiller.student, "student.keras")
"""

import numbers

import keras
from keras import ops


def soft_loss(student_logits, teacher_logits, temperature=1.0):
    """Per-example ``T**2 * KL(softmax(t/T) || softmax(s/T))`` (nats).

    Shapes `(..., classes)`; the result has the leading shape.
    """
    t = ops.divide(ops.convert_to_tensor(teacher_logits, "float32"),
                   temperature)
    s = ops.divide(ops.convert_to_tensor(student_logits, "float32"),
                   temperature)
    log_p = ops.log_softmax(t, axis=-1)
    log_q = ops.log_softmax(s, axis=-1)
    kl = ops.sum(ops.exp(log_p) * (log_p - log_q), axis=-1)
    return kl * (temperature ** 2)


def kd_loss(y_true, student_logits, teacher_logits, *, temperature=4.0,
            alpha=0.5, hard_loss=None):
    """Mean of ``(1 - alpha) * hard + alpha * soft`` over the batch.

    `hard_loss` defaults to sparse categorical cross-entropy on logits.
    """
    hard_loss = hard_loss or keras.losses.SparseCategoricalCrossentropy(
        from_logits=True)
    hard = hard_loss(y_true, student_logits)
    soft = ops.mean(soft_loss(student_logits, teacher_logits, temperature))
    return (1.0 - alpha) * hard + alpha * soft


def _shape(model):
    try:
        shape = model.output_shape
    except (AttributeError, ValueError, RuntimeError):
        return None
    if isinstance(shape, list):
        return None
    return tuple(shape)


def _check_number(value, what, low, high, low_open):
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok:
        ok = (value > low if low_open else value >= low) and value <= high
    if not ok:
        raise ValueError(
            f"Distiller {what}={value!r} is not accepted: it must be in "
            f"{'(' if low_open else '['}{low}, {high}].")


class Distiller(keras.Model):
    """A student trained against a frozen teacher's soft targets.

    Args:
      student: the model to train (sparse or dense); outputs logits.
      teacher: a trained model with the same output shape; outputs logits.
      temperature: softmax temperature T > 0 for both.
      alpha: weight of the soft loss in [0, 1] (1 - alpha on the hard loss).

    Raises:
      ValueError: if the teacher's output shape differs from the student's
        (checked at construction when both are known, else at the first
        batch), or for a bad temperature or alpha.
    """

    def __init__(self, student, teacher, temperature=4.0, alpha=0.5,
                 name="distiller", **kwargs):
        super().__init__(name=name, **kwargs)
        _check_number(temperature, "temperature", 0, float("inf"), True)
        _check_number(alpha, "alpha", 0.0, 1.0, False)
        s_shape, t_shape = _shape(student), _shape(teacher)
        if s_shape is not None and t_shape is not None:
            self._check_shapes(s_shape, t_shape)
        self.student = student
        self.teacher = teacher
        teacher.trainable = False
        self.temperature = float(temperature)
        self.alpha = float(alpha)
        # AC/DC finds the student through this attribute (its dense copy).
        self.tf_sparse_student = student
        if getattr(student, "built", False):
            self.built = True

    def _check_shapes(self, s_shape, t_shape):
        s, t = tuple(s_shape)[1:], tuple(t_shape)[1:]
        if s != t:
            raise ValueError(
                f"Distiller: the teacher outputs shape {tuple(t_shape)} but "
                f"the student outputs {tuple(s_shape)}; their outputs must "
                "have the same shape (same number of classes, both logits).")

    def call(self, inputs, training=False):
        return self.student(inputs, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None,
                     training=True):
        if not training:
            return super().compute_loss(x, y, y_pred, sample_weight,
                                        training=training)
        if self._compile_loss is None:
            raise ValueError(
                "Distiller: compile() needs a loss for the hard targets.")
        hard = self._compile_loss(y, y_pred, sample_weight)
        teacher_logits = ops.stop_gradient(self.teacher(x, training=False))
        self._check_shapes(tuple(y_pred.shape), tuple(teacher_logits.shape))
        soft = soft_loss(y_pred, teacher_logits, self.temperature)
        if sample_weight is not None:
            w = ops.cast(ops.reshape(sample_weight, ops.shape(soft)),
                         soft.dtype)
            soft = ops.sum(soft * w) / ops.maximum(ops.sum(w), 1e-12)
        else:
            soft = ops.mean(soft)
        total = (1.0 - self.alpha) * hard + self.alpha * soft
        # Regularisation losses are added in full, not mixed.
        for loss in self.losses:
            total = total + self._aggregate_additional_loss(loss)
        return total

    def get_config(self):
        return {"temperature": self.temperature, "alpha": self.alpha,
                "name": self.name}
