"""Importing this module registers the gin configurables of audio, data, models, tasks
and experiments: everything an inference command needs to rebuild a run. Training
adds its own (Trainer, StepOptions, CheckpointConfig, LearningRate, ...) when
tfaudio.compose is imported.

Keras 3 Layer/Model subclasses break under `@gin.configurable`, so they are
registered here with `gin.register` instead.
"""

import gin

from tfaudio.audio import compression, geometry  # noqa: F401
from tfaudio.data import audio_data, separation_data, text  # noqa: F401
from tfaudio.models import classifier, dilated_ctc, duration_tacotron, openunmix, tacotron, unet
from tfaudio.tasks import classification, ctc, separation, tts  # noqa: F401

gin.register(compression.LogCompression, module="tfaudio")
gin.register(unet.AudioUNet, module="tfaudio")
gin.register(unet.HybridUNet, module="tfaudio")
gin.register(tacotron.Tacotron, module="tfaudio")
gin.register(duration_tacotron.DurationTacotron, module="tfaudio")
gin.register(openunmix.OpenUnmix, module="tfaudio")
gin.register(dilated_ctc.DilatedCTC, module="tfaudio")
gin.register(classifier.Classifier, module="tfaudio")
