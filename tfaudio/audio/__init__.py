"""Audio: file I/O (soundfile), geometry, tf.signal features, log compression, padding."""
