"""XLA:CPU formulations of the same functions, chosen by `lpaae_jax.backend` only.

`conv`: convolutions (matmul kernel gradients, Winograd and thin 3x3 convolutions, the
sub-pixel transposed conv); `compiler`: XLA:CPU compiler options; `malloc`: glibc keeping
freed memory in training processes. Each measured faster on XLA:CPU
(experiments/benchmark/NOTEBOOK.md); none changes a parameter or a function computed.
"""
