"""Mixed precision and XLA: on where a GPU is present, off on a CPU, unless set.

`choose` is pure (it takes the GPUs' compute capabilities), so it is tested
without a GPU. The hypermodels set the chosen dtype policy each time they
build a model, and the choice is recorded in results.json.
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

