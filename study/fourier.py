"""2-D Fourier views of images and Gaussian low/high-pass filters (NumPy).

Images are (..., H, W, C): the transforms run over the two spatial axes
only, and `fftshift` shifts only those axes, so the channel and image axes
are never mixed in.

Filter widths are in cycles per pixel on NumPy's `fftfreq` grid, where the
zero frequency lies exactly at 0 and the Nyquist frequency at 0.5.
"""

from __future__ import annotations

import numpy as np

SPATIAL_AXES = (-3, -2)


def spectrum(images: np.ndarray) -> np.ndarray:
    """Complex 2-D FFT of (..., H, W, C) images over the spatial axes."""
    return np.fft.fft2(np.asarray(images, dtype=np.float64), axes=SPATIAL_AXES)


def log_amplitude(images: np.ndarray) -> np.ndarray:
    """log(1 + |F|), shifted so the zero frequency sits at the centre."""
    return np.fft.fftshift(np.log1p(np.abs(spectrum(images))), axes=SPATIAL_AXES)


def phase(images: np.ndarray) -> np.ndarray:
    """Phase angle of F in [-pi, pi], shifted like `log_amplitude`."""
    return np.fft.fftshift(np.angle(spectrum(images)), axes=SPATIAL_AXES)


def reconstruct(images: np.ndarray) -> np.ndarray:
    """Inverse FFT of the FFT: equals the input up to float round-off."""
    return np.fft.ifft2(spectrum(images), axes=SPATIAL_AXES).real


def gaussian_low_pass(height: int, width: int, sigma: float) -> np.ndarray:
    """Gain exp(-(fy² + fx²) / (2 σ²)) on the unshifted (H, W) frequency grid.

    The gain is 1 at the zero frequency and falls with distance from it;
    `sigma` is in cycles per pixel.

    >>> float(gaussian_low_pass(4, 4, 0.5)[0, 0])
    1.0
    """
    if sigma <= 0:
        raise ValueError(f"filter width must be positive, got {sigma}")
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.fftfreq(width)[None, :]
    return np.exp(-(fy**2 + fx**2) / (2.0 * sigma**2))


def filter_images(images: np.ndarray, sigma: float, kind: str) -> np.ndarray:
    """Apply a Gaussian 'low' or 'high' pass (1 minus the low pass) to (..., H, W, C)."""
    if kind not in ("low", "high"):
        raise ValueError(f"filter kind must be 'low' or 'high', got {kind!r}")
    height, width = np.shape(images)[-3], np.shape(images)[-2]
    gain = gaussian_low_pass(height, width, sigma)
    if kind == "high":
        gain = 1.0 - gain
    # Broadcast the (H, W) gain over any leading axes and the channel axis.
    filtered = spectrum(images) * gain[:, :, None]
    return np.fft.ifft2(filtered, axes=SPATIAL_AXES).real


def energy_kept(images: np.ndarray, sigma: float, kind: str) -> float:
    """Share of the spectral energy (sum of |F|²) that the filter passes."""
    power = np.abs(spectrum(images)) ** 2
    gain = gaussian_low_pass(np.shape(images)[-3], np.shape(images)[-2], sigma)
    if kind == "high":
        gain = 1.0 - gain
    return float((power * (gain**2)[:, :, None]).sum() / power.sum())
