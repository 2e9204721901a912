"""tfaudio: a Gin-configured TensorFlow/Keras training framework for audio research."""

__version__ = "0.1.0"
