"""Artefacts that generated images carry and real ones do not, each as a ratio to real images.

  lattice_rms(images, period)          RMS of the pattern every image shares at one period
  colour_grain_rms(images)             RMS of per-pixel colour noise
  artifact_ratios(generated, real)     {"lattice_ratio_p2", "_p4", "_p8", "colour_grain_ratio"}

A stride-2 upsampling stage can leave a fixed pattern of its period in every output
(Odena et al. 2016, "Deconvolution and checkerboard artifacts"): the decoder's three stages
give periods 2, 4 and 8. `lattice_rms` cuts each image into period x period blocks,
subtracts each block's mean, and averages the residual over blocks and images: what is left
is the part of the within-block pattern that is the same everywhere. In real images it is
noise, falling as 1/sqrt(number of images), so ratios compare equal numbers of images
(`artifact_ratios` takes the first min(len(generated), len(real)) of each; the project
reports them at NUM_IMAGES). `colour_grain_rms` is the chroma (each pixel minus the mean of
its channels) minus its 3x3 box blur: colour that changes from pixel to pixel. A ratio near
1 means "as real"; the CIFAR-10 fidelity targets are <= 2.
"""

import numpy as np

PERIODS = (2, 4, 8)
NUM_IMAGES = 1000  # images of each kind in the ratios the project reports


def _as_float(images) -> np.ndarray:
  images = np.asarray(images)
  if images.ndim != 4:
    raise ValueError(f"images must be (N, H, W, C); got shape {images.shape}.")
  if images.dtype == np.uint8:
    return images.astype(np.float64) / 127.5 - 1.0
  return images.astype(np.float64)


def lattice_rms(images, period: int) -> float:
  """RMS over (period, period, C) of the within-block residual averaged over every block of
  every image (N, H, W, C); H and W must be multiples of `period`."""
  images = _as_float(images)
  num, height, width, channels = images.shape
  if height % period or width % period:
    raise ValueError(f"{height}x{width} images do not split into {period}x{period} blocks.")
  blocks = images.reshape(num, height // period, period, width // period, period, channels)
  residual = blocks - blocks.mean(axis=(2, 4), keepdims=True)
  pattern = residual.mean(axis=(0, 1, 3))  # (period, period, channels)
  return float(np.sqrt(np.mean(np.square(pattern))))


def colour_grain_rms(images) -> float:
  """RMS of the chroma's high-pass (chroma minus its 3x3 box blur, interior pixels) of
  colour images (N, H, W, 3)."""
  images = _as_float(images)
  if images.shape[-1] != 3:
    raise ValueError(f"colour grain needs 3-channel images; got {images.shape[-1]}.")
  chroma = images - images.mean(axis=-1, keepdims=True)
  height, width = chroma.shape[1:3]
  blurred = sum(chroma[:, dy:height - 2 + dy, dx:width - 2 + dx]
                for dy in range(3) for dx in range(3)) / 9.0
  return float(np.sqrt(np.mean(np.square(chroma[:, 1:-1, 1:-1] - blurred))))


def artifact_ratios(generated, real) -> dict[str, float]:
  """Each statistic of `generated` over the same statistic of `real`, from equal numbers of
  images; colour grain only for 3-channel images."""
  count = min(len(generated), len(real))
  if count < 1:
    raise ValueError("artifact_ratios needs at least one generated and one real image.")
  generated, real = _as_float(generated[:count]), _as_float(real[:count])
  ratios = {f"lattice_ratio_p{period}": lattice_rms(generated, period) / lattice_rms(real, period)
            for period in PERIODS}
  if generated.shape[-1] == 3:
    ratios["colour_grain_ratio"] = colour_grain_rms(generated) / colour_grain_rms(real)
  return ratios
