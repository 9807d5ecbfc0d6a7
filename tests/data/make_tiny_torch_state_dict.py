"""Writes the torch.save fixtures of tests/inception_test.py (needs torch; run once).

  python tests/data/make_tiny_torch_state_dict.py

tiny_torch_state_dict.pth (zip format), tiny_torch_state_dict_legacy.pth (the
pre-1.6 stream) and tiny_torch_state_dict_expected.npz (the values as numpy;
bfloat16 widened to float32); and torch_bilinear_downscale.npz, pytorch-fid's
resize (F.interpolate, bilinear, align_corners=False) of a 500x420 pattern to
299x299, every 13th pixel.
"""

import collections
import os

import numpy as np
import torch
import torch.nn.functional as F


def tiny_state_dict():
  generator = torch.Generator().manual_seed(0)
  shared = torch.randn(4, 6, generator=generator)  # One storage behind two entries.
  state = collections.OrderedDict()
  state["Conv2d_1a_3x3.conv.weight"] = torch.randn(2, 3, 3, 3, generator=generator)
  state["Conv2d_1a_3x3.bn.running_var"] = torch.rand(2, generator=generator).double()
  state["Conv2d_1a_3x3.bn.num_batches_tracked"] = torch.tensor(7)  # 0-d int64.
  state["Mixed_5b.branch1x1.bn.weight"] = torch.randn(5, generator=generator).half()
  state["Mixed_5b.branch1x1.bn.bias"] = torch.randn(3, generator=generator).bfloat16()
  state["fc.weight"] = shared[1:, ::2]  # Non-contiguous view at an offset.
  state["fc.bias"] = shared[2, 1:5]
  state["transposed"] = torch.arange(6, dtype=torch.int32).reshape(2, 3).t()
  state["mask"] = torch.tensor([True, False, True])
  state["bytes"] = torch.arange(4, dtype=torch.uint8)
  state["counts"] = torch.tensor([1, 2, 65535], dtype=torch.uint16)  # Untyped storage (v3).
  state["empty"] = torch.zeros(0, 3)
  return state


def downscale_pattern() -> np.ndarray:
  """(1, 500, 420) uint8, a deterministic non-smooth pattern (also in inception_test.py)."""
  rows, cols = np.meshgrid(np.arange(500), np.arange(420), indexing="ij")
  return ((rows * 7919 + cols * 104729 + rows * cols) % 256).astype(np.uint8)[None]


def torch_fid_resize(images_uint8: np.ndarray) -> np.ndarray:
  """pytorch-fid's input path for (N, H, W) gray uint8 -> (N, 299, 299) in [-1, 1]."""
  x = torch.from_numpy(images_uint8).float().div(255)[:, None]
  x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
  return (2 * x - 1)[:, 0].numpy()


def main():
  directory = os.path.dirname(os.path.abspath(__file__))
  state = tiny_state_dict()
  torch.save(state, os.path.join(directory, "tiny_torch_state_dict.pth"))
  torch.save(state, os.path.join(directory, "tiny_torch_state_dict_legacy.pth"),
             _use_new_zipfile_serialization=False)
  expected = {key: (value.float() if value.dtype == torch.bfloat16 else value).numpy()
              for key, value in state.items()}
  np.savez(os.path.join(directory, "tiny_torch_state_dict_expected.npz"), **expected)
  np.savez(os.path.join(directory, "torch_bilinear_downscale.npz"),
           every_13th_pixel=torch_fid_resize(downscale_pattern())[:, ::13, ::13])


if __name__ == "__main__":
  main()
