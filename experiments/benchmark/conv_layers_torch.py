"""PyTorch's side of `conv_layers_side_by_side` (run under the torch venv; no lpaae_jax).

  TORCH_VENV/bin/python experiments/benchmark/conv_layers_torch.py SHAPES_JSON

SHAPES_JSON: a list of [kernel, stride, in, out, size, pad_low, pad_high]. Prints one JSON
list of {"forward_ms", "all_ms"} (forward; forward + input and kernel gradients), median of
5 after a warm-up, batch 64, float32, 2 threads.
"""

import json
import statistics
import sys
import time

import torch


def _median_ms(fn, repeats=5):
  fn()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return 1e3 * statistics.median(times)


def main():
  torch.set_num_threads(2)
  rows = []
  for kernel, stride, cin, cout, size, low, high in json.loads(sys.argv[1]):
    # The padding applied up front (PyTorch pads symmetrically; ours may not).
    x = torch.randn(64, cin, size + low + high, size + low + high, requires_grad=True)
    w = torch.randn(cout, cin, kernel, kernel, requires_grad=True)
    conv = lambda: torch.nn.functional.conv2d(x, w, stride=stride)
    g = torch.randn_like(conv())

    def forward_and_gradients():
      torch.autograd.grad(conv(), (x, w), g)

    rows.append({"forward_ms": _median_ms(conv), "all_ms": _median_ms(forward_and_gradients)})
  print(json.dumps(rows))


if __name__ == "__main__":
  main()
