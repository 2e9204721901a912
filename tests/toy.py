"""A toy regression model, task and data source, for trainer tests only."""

import time

import gin
import keras
import numpy as np
import tensorflow as tf

from tfaudio.data.order import index_stream
from tfaudio.tasks.base import Task


class ToyModel(keras.Model):
    def __init__(self, hidden=8, batch_norm=False, **kwargs):
        super().__init__(**kwargs)
        self.body = keras.layers.Dense(hidden, activation="tanh")
        self.norm = keras.layers.BatchNormalization() if batch_norm else None
        self.head = keras.layers.Dense(1)

    def call(self, x, training=False):
        h = self.body(x)
        if self.norm is not None:
            h = self.norm(h, training=training)
        return self.head(h)


class ToyTask(Task):
    def loss(self, model, batch, training):
        pred = tf.cast(model(batch["x"], training=training)[:, 0], tf.float32)
        err = tf.square(pred - batch["y"])
        return err, {"mse": err}

    def metrics(self, model, batch):
        pred = tf.cast(model(batch["x"], training=False)[:, 0], tf.float32)
        return {"loss": tf.square(pred - batch["y"]), "host/prediction": pred, "host/target": batch["y"]}

    def host_metrics(self, values):
        return {"abs_error": np.abs(values["prediction"] - values["target"])}

    def build_for_inference(self, model):
        model(tf.zeros([1, 4]))


class ToyData:
    """y = x . w over 256 fixed examples, visited in the resumable index order; `delay`
    seconds of waiting per training batch make a step as slow as a real model's."""

    def __init__(self, n=256, delay=0.0):
        self.delay = delay
        rng = np.random.default_rng(0)
        self.x = rng.normal(size=(n, 4)).astype(np.float32)
        self.y = (self.x @ np.array([1.0, -2.0, 0.5, 3.0], np.float32)).astype(np.float32)

    def train(self, batch_size, seed, start=0, input_context=None):
        x, y = tf.constant(self.x), tf.constant(self.y)
        ds = index_stream(len(self.x), seed, start, input_context=input_context)
        ds = ds.map(lambda e: {"x": tf.gather(x, e["index"]), "y": tf.gather(y, e["index"])})
        ds = ds.batch(batch_size, drop_remainder=True)
        return (ds.map(self._slow) if self.delay else ds).prefetch(2)

    def _slow(self, batch):
        def wait(y):
            time.sleep(self.delay)
            return y
        y = tf.numpy_function(wait, [batch["y"]], tf.float32, stateful=False)
        y.set_shape(batch["y"].shape)
        return dict(batch, y=y)

    def validation(self, batch_size):
        ds = tf.data.Dataset.from_tensor_slices({"x": self.x[:64], "y": self.y[:64]})
        return ds.batch(batch_size)

    def train_subset(self, batch_size):
        return None


def register():
    for obj in (ToyModel, ToyTask, ToyData):
        if gin.config._REGISTRY.get(f"tests.{obj.__name__}") is None:
            gin.register(obj, module="tests")
