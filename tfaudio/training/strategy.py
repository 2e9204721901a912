"""Distribution strategies chosen by the `--strategy` flag."""

from __future__ import annotations

import tensorflow as tf

from tfaudio.errors import ConfigError

STRATEGIES = ("default", "one_device", "mirrored", "multi_worker", "tpu")


def split_cpu(num_replicas: int):
    """Splits the CPU into `num_replicas` logical devices (before TF initialises devices)."""
    if num_replicas > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(num_replicas)])


def make_strategy(name: str = "default", num_cpu_replicas: int = 0, tpu: str = ""):
    """default/one_device: the first GPU when present, else the CPU; mirrored: all local
    GPUs (or the logical CPUs from --num_cpu_replicas); multi_worker: from TF_CONFIG;
    tpu: the TPU at `tpu` (default "local", a TPU VM's own)."""
    if name not in STRATEGIES:
        raise ValueError(f"--strategy={name}: choose one of {', '.join(STRATEGIES)}")
    if name == "multi_worker":  # before anything initialises TensorFlow's context
        return tf.distribute.MultiWorkerMirroredStrategy()
    split_cpu(num_cpu_replicas)
    gpus = tf.config.list_logical_devices("GPU")
    if name in ("default", "one_device"):
        return tf.distribute.OneDeviceStrategy("/gpu:0" if gpus else "/cpu:0")
    if name == "mirrored":
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    return _tpu_strategy(tpu or "local")


def _tpu_strategy(tpu: str):
    """TPUStrategy on the TPU at `tpu` ("local": this TPU VM's); one ConfigError line when
    there is none."""
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as exc:
        reason = str(exc).strip().splitlines()[0].split(". ")[0]
        raise ConfigError(f"--strategy=tpu --tpu={tpu}: no TPU found ({reason}); run on a TPU VM "
                          "(--tpu=local) or name a TPU node with --tpu=NAME") from exc
    return tf.distribute.TPUStrategy(resolver)


def is_chief(strategy) -> bool:
    """True unless this process is a non-chief worker of a multi-worker strategy."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    if resolver.task_type == "chief":
        return True
    return resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in resolver.cluster_spec().jobs


def worker_dir(model_dir: str, strategy) -> str:
    """Where this process writes: the run directory for the chief; a private folder
    inside it for other workers (their checkpoints are copies the collective save
    needs, their metrics duplicates)."""
    if is_chief(strategy):
        return model_dir
    resolver = strategy.cluster_resolver
    return f"{model_dir}/.{resolver.task_type}{resolver.task_id}"
