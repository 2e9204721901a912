"""Data: dataset readers, tf.data pipelines and corpus builders."""
