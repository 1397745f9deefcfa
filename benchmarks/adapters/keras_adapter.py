"""Keras 3 on TensorFlow: keras.layers.LSTM called eagerly and in tf.function.

TF intra-op threads = n and inter-op threads = 1 are set right after import,
before any op.  Training: tf.GradientTape over loss = sum(outputs) inside a
tf.function, gradients of kernel, recurrent_kernel, bias.
"""
import os

from adapters import Bench

tf = keras = None


def setup(threads):
    global tf, keras
    import tensorflow as tf_mod
    tf = tf_mod
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras as keras_mod
    keras = keras_mod
    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(f"Keras backend is {keras.backend.backend()!r} "
                           f"(KERAS_BACKEND={os.environ.get('KERAS_BACKEND')}), want tensorflow")
    return {"tensorflow": tf.__version__, "keras": keras.__version__,
            "tf_intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
            "tf_inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads()}


def _layer(w, shape):
    layer = keras.layers.LSTM(w["recurrent_kernel"].shape[0], return_sequences=True)
    layer.build(shape)
    layer.set_weights([w["kernel"], w["recurrent_kernel"], w["bias"]])
    return layer


def inference(w, x):
    layer = _layer(w, x.shape)
    xt = tf.constant(x)
    eager = lambda: layer(xt)
    graph = tf.function(lambda v: layer(v))
    compiled = lambda: graph(xt)
    return [Bench("keras-fn", compiled, lambda: [compiled().numpy()]),
            Bench("keras-eager", eager, lambda: [eager().numpy()])]


def training(w, x):
    layer = _layer(w, x.shape)
    xt = tf.constant(x)

    @tf.function
    def fn():
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(xt, training=True))
        return tape.gradient(loss, [layer.cell.kernel, layer.cell.recurrent_kernel,
                                    layer.cell.bias])

    return [Bench("keras-fn", fn, lambda: [g.numpy() for g in fn()])]


def streaming(w, x_t):
    return []
