"""tfaudio: a Gin-configured TensorFlow/Keras training framework for audio research."""

__version__ = "0.1.0"

import importlib.util

if importlib.util.find_spec("tensorflow") is None:
    raise ImportError("tfaudio needs TensorFlow: pip install -e '.[cpu]' (or '.[gpu]' on a CUDA host)")
