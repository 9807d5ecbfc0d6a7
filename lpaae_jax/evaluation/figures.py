"""Figures of the paper as PNGs, each also returned as a uint8 array (for TensorBoard).

  to_uint8(images)                           [-1, 1] floats -> uint8 (N, H, W, C)
  image_grid(images, ncols)                  -> uint8 (rows*H, ncols*W, C), row-major
  save_png(array, path)                      writes a (H, W, C) or (H, W) uint8 image
  figure3_inputs(spec, noise_key, rows)      -> (noise, s) of the Figure-3 grid
  figure3_grid(states, noise_key, rows=10)   Figure 3: column j uses s = j, row r noise r
  reconstruction_pairs(states, images)       real | reconstruction, side by side
  tsne_figure(codes, labels, ...)            Figure 4: t-SNE of encoder codes and CG samples
  figure4_comparison(...)                    Figure 4 as in the paper: learned-prior codes,
                                             CG samples, fixed-prior (baseline) codes

Arrays are (H, W, C) with C = 1 or 3, so `grid[None]` is what clu's write_images takes.
"""

import os
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib import figure as mpl_figure
from matplotlib.backends import backend_agg
from PIL import Image
from sklearn import manifold

import lpaae_jax
from lpaae_jax import forward
from lpaae_jax.models import ModelSpec
from lpaae_jax.states import States

GRID_COLUMNS = 10  # Columns of the Figure-3 grid for condition 'none' (one per s otherwise).


def to_uint8(images) -> np.ndarray:
  """Images in [-1, 1] (float) -> uint8 in [0, 255]; uint8 input is returned as is."""
  images = np.asarray(images)
  if images.dtype == np.uint8:
    return images
  return np.clip(np.round((images.astype(np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def image_grid(images, ncols: int, padding: int = 0, pad_value: int = 0) -> np.ndarray:
  """(N, H, W, C) images in [-1, 1] (or uint8) -> one uint8 (rows*H, ncols*W, C) grid.

  Row-major: image n goes to row n // ncols, column n % ncols. A short last row is
  filled with `pad_value`; `padding` pixels of it separate the tiles.
  """
  images = to_uint8(images)
  if images.ndim == 3:  # (N, H, W) grayscale.
    images = images[..., None]
  if images.ndim != 4 or not len(images) or ncols < 1:
    raise ValueError(f"image_grid needs (N >= 1, H, W, C) images and ncols >= 1; got shape "
                     f"{images.shape}, ncols={ncols}.")
  num, height, width, channels = images.shape
  ncols = min(ncols, num)
  nrows = -(-num // ncols)
  tile_h, tile_w = height + padding, width + padding
  grid = np.full((nrows * tile_h - padding, ncols * tile_w - padding, channels), pad_value,
                 np.uint8)
  for index, image in enumerate(images):
    row, col = divmod(index, ncols)
    grid[row * tile_h:row * tile_h + height, col * tile_w:col * tile_w + width] = image
  return grid


def save_png(array: np.ndarray, path: str) -> str:
  """Writes a uint8 (H, W, C) or (H, W) array as PNG (creating the directory)."""
  array = np.asarray(array)
  if array.ndim == 3 and array.shape[-1] == 1:
    array = array[..., 0]
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  Image.fromarray(array).save(path, format="PNG")
  return path


def _maybe_save(array: np.ndarray, path: Optional[str]) -> np.ndarray:
  if path:
    save_png(array, path)
  return array


# --- Sample grid (Figure 3) ------------------------------------------------------------------


def figure3_inputs(spec: ModelSpec, noise_key, rows: int = 10):
  """Prior noise and s of the grid, row-major (rows * columns of them).

  Conditional: row r shares noise vector r across its columns and column j has s = j.
  Condition 'none': rows * 10 independent noise vectors and s = None.
  """
  if rows < 1:
    raise ValueError(f"rows={rows} must be >= 1.")
  if not spec.conditional:
    return forward.prior_noise(spec, noise_key, rows * GRID_COLUMNS), None
  row_noise = forward.prior_noise(spec, noise_key, rows)
  noise = jnp.repeat(row_noise, spec.num_classes, axis=0)
  s = jnp.tile(jnp.arange(spec.num_classes, dtype=jnp.int32), rows)
  return noise, s


def figure3_grid(states: States, noise_key, rows: int = 10,
                 path: Optional[str] = None) -> np.ndarray:
  """Figure 3: a rows x 10 grid of samples dec(z_c); column j has s = j (conditional).

  Returns the uint8 (rows*32, 10*32, C) grid; writes it as PNG to `path` if given.
  """
  noise, s = figure3_inputs(states.spec, noise_key, rows)
  images = lpaae_jax.decode_noise(states, noise, s)
  ncols = states.spec.num_classes if states.spec.conditional else GRID_COLUMNS
  return _maybe_save(image_grid(images, ncols), path)


# --- Reconstructions -------------------------------------------------------------------------


def reconstruction_pairs(states: States, images, path: Optional[str] = None,
                         pairs_per_row: Optional[int] = None,
                         reconstructions=None) -> np.ndarray:
  """Real image and its reconstruction dec(enc(x)) side by side, `pairs_per_row` pairs a row.

  images: (N, 32, 32, C) in [-1, 1]; `reconstructions` of them when already computed.
  Returns the uint8 grid; writes a PNG to `path` if given.
  """
  images = np.asarray(images, np.float32)
  if reconstructions is None:
    reconstructions = lpaae_jax.reconstruct(states, images)
  reconstructions = np.asarray(reconstructions)
  pairs = np.stack([images, reconstructions], axis=1).reshape(-1, *images.shape[1:])
  pairs_per_row = pairs_per_row or min(len(images), 8)
  return _maybe_save(image_grid(pairs, 2 * pairs_per_row), path)


# --- t-SNE (Figure 4) ------------------------------------------------------------------------


# matplotlib's tab10, spelled out so no colormap registry or pyplot state is needed.
_TAB10 = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
          "#7f7f7f", "#bcbd22", "#17becf")


def _scatter(axes, points, labels, title: str, marker: str = "o", size: float = 6.0,
             alpha: float = 0.7, label_prefix: str = "class "):
  if labels is None:
    axes.scatter(points[:, 0], points[:, 1], s=size, marker=marker, c="black", alpha=alpha,
                 linewidths=0.5, label="samples")
  else:
    for value in np.unique(labels):
      chosen = labels == value
      axes.scatter(points[chosen, 0], points[chosen, 1], s=size, marker=marker,
                   color=_TAB10[int(value) % len(_TAB10)], alpha=alpha, linewidths=0.5,
                   label=f"{label_prefix}{value}")
  axes.set_title(title, fontsize=9)
  axes.set_xticks([])
  axes.set_yticks([])


def tsne_embedding(points, seed: int = 0, perplexity: float = 30.0) -> np.ndarray:
  """2-D t-SNE (scikit-learn, PCA init) of (N, D) points."""
  points = np.asarray(points, np.float64)
  if points.ndim != 2 or len(points) < 5:
    raise ValueError(f"t-SNE needs (N >= 5, D) points; got shape {points.shape}.")
  perplexity = min(perplexity, (len(points) - 1) / 3.0)  # sklearn needs perplexity < N.
  return manifold.TSNE(n_components=2, perplexity=perplexity, init="pca",
                       random_state=seed).fit_transform(points)


def _finish(fig, legend_panel, title: str, path: Optional[str]) -> np.ndarray:
  """One class legend under the panels, the title; rendered (and saved to `path`)."""
  handles, names = legend_panel.get_legend_handles_labels()
  fig.legend(handles, names, loc="lower center", ncol=min(len(names), 10), fontsize=7,
             markerscale=2.5, frameon=False)
  if title:
    fig.suptitle(title, fontsize=10)
  fig.tight_layout(rect=(0, 0.07, 1, 0.95 if title else 1))
  return _maybe_save(_render(fig), path)


def _render(fig) -> np.ndarray:
  canvas = backend_agg.FigureCanvasAgg(fig)
  canvas.draw()
  return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def tsne_figure(codes, labels, prior_codes=None, prior_s=None, *,
                path: Optional[str] = None, seed: int = 0, perplexity: float = 30.0,
                title: str = "") -> np.ndarray:
  """Figure 4: t-SNE of encoder codes of real images coloured by class.

  With `prior_codes` (code generator samples, learned prior) one t-SNE embeds both sets
  (so they share axes) and three panels show the codes, the CG samples coloured by
  `prior_s` (black when None: condition 'none'), and both overlaid. Without them (fixed
  prior) one panel shows the encoder codes. Returns the rendered uint8 (H, W, 3) image and
  writes it as PNG to `path` if given.
  """
  codes = np.asarray(codes, np.float64)
  labels = np.asarray(labels)
  if codes.ndim != 2 or labels.shape != (len(codes),):
    raise ValueError(f"codes (N, D) need one label each; got codes {codes.shape}, labels "
                     f"{labels.shape}.")
  points = codes if prior_codes is None else np.concatenate(
      [codes, np.asarray(prior_codes, np.float64)])
  embedded = tsne_embedding(points, seed=seed, perplexity=perplexity)
  code_points, prior_points = embedded[:len(codes)], embedded[len(codes):]
  prior_s = None if prior_s is None else np.asarray(prior_s)

  num_panels = 1 if prior_codes is None else 3
  fig = mpl_figure.Figure(figsize=(4.2 * num_panels, 4.4), dpi=100)
  # Shared axes: the panels are views of one embedding, so positions are comparable.
  panels = fig.subplots(1, num_panels, squeeze=False, sharex=True, sharey=True)[0]
  _scatter(panels[0], code_points, labels, "encoder codes of test images (by class)")
  if prior_codes is not None:
    _scatter(panels[1], prior_points, prior_s, "code generator samples (by s)", marker="x",
             label_prefix="s=")
    _scatter(panels[2], code_points, labels, "overlay: codes (o), CG samples (x)", alpha=0.25)
    _scatter(panels[2], prior_points, prior_s, "overlay: codes (o), CG samples (x)",
             marker="x", label_prefix="s=")
  return _finish(fig, panels[0], title, path)



def figure4_comparison(codes, labels, prior_codes, prior_s, baseline_codes, baseline_labels,
                       *, path: Optional[str] = None, seed: int = 0,
                       perplexity: float = 30.0, title: str = "") -> np.ndarray:
  """Figure 4 of the paper: t-SNE of (a) the learned-prior model's encoder codes of real
  images (by class), (b) its code generator's samples (by s; black for condition 'none'),
  (c) the fixed-prior baseline's encoder codes (by class).

  (a) and (b) live in one code space, so they share one embedding; (c) is another model's
  space and gets its own. Returns the uint8 (H, W, 3) image; writes a PNG to `path`.
  """
  codes, baseline_codes = np.asarray(codes, np.float64), np.asarray(baseline_codes, np.float64)
  embedded = tsne_embedding(np.concatenate([codes, np.asarray(prior_codes, np.float64)]),
                            seed=seed, perplexity=perplexity)
  baseline_embedded = tsne_embedding(baseline_codes, seed=seed, perplexity=perplexity)
  fig = mpl_figure.Figure(figsize=(12.6, 4.4), dpi=100)
  panels = fig.subplots(1, 3)
  _scatter(panels[0], embedded[:len(codes)], np.asarray(labels),
           "(a) learned prior: encoder codes (by class)")
  _scatter(panels[1], embedded[len(codes):], None if prior_s is None else np.asarray(prior_s),
           "(b) code generator samples (by s)", marker="x", label_prefix="s=")
  _scatter(panels[2], baseline_embedded, np.asarray(baseline_labels),
           "(c) fixed prior: encoder codes (by class)")
  return _finish(fig, panels[0], title, path)
