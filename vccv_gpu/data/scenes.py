"""Photographic scenes for generated clips: scikit-image's bundled sample photographs, and
bilinear sampling of a view of one (the synthetic set's pans, zooms and cut-out objects; the
tests' clips too, through tools/clips.py). Needs scikit-image (`pip install vccv_gpu[demo]`)."""

from __future__ import annotations

import functools

import numpy as np

__all__ = ["photo", "require_photos", "sample_bilinear"]


def require_photos() -> None:
    """Raises ImportError naming the extra to install when scikit-image is missing (call it
    before any work: a generator that dies half-way leaves a half-written folder)."""
    try:
        import skimage.data  # noqa: F401
    except ImportError:
        raise ImportError("generated clips are made from scikit-image's sample photographs, and scikit-image "
                          "is not installed: pip install \"vccv_gpu[demo]\" (from a checkout: "
                          "pip install -e \".[demo]\")") from None


@functools.cache
def photo(name: str) -> np.ndarray:
    """A bundled sample image as float32 RGB (H, W, 3) in 0..255; cached."""
    require_photos()
    import skimage.data

    img = np.asarray(getattr(skimage.data, name)())
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    img = img[:, :, :3].astype(np.float32)
    img.setflags(write=False)
    return img


def sample_bilinear(src: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Bilinear sample ``src`` at the grid ``ys`` x ``xs`` (separable, so cheap).

    The view has no rotation, so rows and columns can be interpolated
    separately: first the rows (touching only the needed source columns), then
    the columns.  Coordinates are clamped to the image.
    """
    h, w = src.shape[:2]
    ys = np.clip(ys, 0.0, h - 1.0)
    xs = np.clip(xs, 0.0, w - 1.0)
    y0 = np.minimum(ys.astype(np.intp), h - 2 if h > 1 else 0)
    x0 = np.minimum(xs.astype(np.intp), w - 2 if w > 1 else 0)
    y1 = np.minimum(y0 + 1, h - 1)
    x1 = np.minimum(x0 + 1, w - 1)
    fy = (ys - y0).astype(np.float32)[:, None, None]
    # Restrict to the source columns actually used before the row pass.
    c0, c1 = int(x0.min()), int(x1.max()) + 1
    part = src[:, c0:c1]
    rows = part[y0] * (1.0 - fy) + part[y1] * fy
    # Column pass on a (rows, cols*3) view: np.take on flat channel indices is
    # ~3x faster than fancy indexing the middle axis of (rows, cols, 3).
    flat = rows.reshape(len(ys), -1)
    chan = np.arange(3)
    left = np.take(flat, ((x0 - c0)[:, None] * 3 + chan).ravel(), axis=1)
    right = np.take(flat, ((x1 - c0)[:, None] * 3 + chan).ravel(), axis=1)
    right -= left
    right *= np.repeat((xs - x0).astype(np.float32), 3)
    left += right
    return left.reshape(len(ys), len(xs), 3)
