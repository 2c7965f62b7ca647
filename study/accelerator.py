"""Mixed precision, XLA and multi-GPU training: chosen from the GPUs present.

`choose` is pure (it takes the GPUs' compute capabilities), so it is tested
without a GPU. The hypermodels set the chosen dtype policy each time they
build a model, and the choice is recorded in results.json.

With two or more GPUs, `distribution_strategy` returns a MirroredStrategy:
each GPU runs a replica of the model and trains it on its share of every
batch. The configured batch size stays the global one, which Keras splits
across the replicas.
"""

from __future__ import annotations

from study.config import AcceleratorSettings

SWITCHES = ("auto", "on", "off")
# bfloat16 needs compute capability 8.0 (Ampere) or later; older GPUs get
# float16, which Keras pairs with loss scaling.
BFLOAT16_CAPABILITY = (8, 0)


def choose(settings: AcceleratorSettings, capabilities: list[tuple[int, int]]) -> dict:
    """Return the dtype policy name and the XLA flag for these GPUs (none: a CPU run).

    >>> choose(AcceleratorSettings(), [(9, 0)])
    {'policy': 'mixed_bfloat16', 'xla': True}
    >>> choose(AcceleratorSettings(), [])
    {'policy': 'float32', 'xla': False}
    """
    for key in ("mixed_precision", "xla"):
        value = getattr(settings, key)
        if value not in SWITCHES:
            raise ValueError(f"accelerator.{key} must be one of {', '.join(SWITCHES)}, "
                             f"got {value!r}")
    gpu = bool(capabilities)
    mixed = settings.mixed_precision == "on" or (settings.mixed_precision == "auto" and gpu)
    policy = "float32"
    if mixed:
        bfloat16 = not gpu or all(c >= BFLOAT16_CAPABILITY for c in capabilities)
        policy = "mixed_bfloat16" if bfloat16 else "mixed_float16"
    xla = settings.xla == "on" or (settings.xla == "auto" and gpu)
    return {"policy": policy, "xla": xla}


def gpu_capabilities() -> list[tuple[int, int]]:
    """Return the compute capability of each GPU TensorFlow finds, (0, 0) if not reported."""
    import tensorflow as tf

    capabilities = []
    for device in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(device)
        capabilities.append(tuple(details.get("compute_capability") or (0, 0)))
    return capabilities


def gpu_devices() -> list[str]:
    """Return the names of the logical GPU devices, such as '/device:GPU:0'.

    Listing logical devices initialises TensorFlow's runtime, after which
    the device configuration can no longer change.
    """
    import tensorflow as tf

    return [device.name for device in tf.config.list_logical_devices("GPU")]


def distribution_strategy(devices: list[str]):
    """Return a tf.distribute.MirroredStrategy over `devices`, or None for fewer than two.

    With None, Keras trains on its default device as it would without this
    module, so a single-GPU or CPU run keeps its numbers.

    NOTE: in Keras 3.15 every replica's dropout seed state has the same
    value, so the replicas draw the same dropout masks for their shares of
    a batch. A mirrored run therefore does not reproduce a single-device one.
    """
    if len(devices) < 2:
        return None
    import tensorflow as tf

    return tf.distribute.MirroredStrategy(devices=list(devices))


def gpu_strategy():
    """Return a MirroredStrategy over every visible GPU, or None with fewer than two.

    The result is what keras-tuner's `distribution_strategy=` argument and
    `study.refit.refit`'s `strategy=` argument expect.
    """
    return distribution_strategy(gpu_devices())


def replica_count(strategy) -> int:
    """Return how many model replicas train on each batch under `strategy` (1 for None)."""
    return 1 if strategy is None else int(strategy.num_replicas_in_sync)
