"""CIFAR-10 at paper scale (w=64, batch 64, 100k iterations).

Run:  python -m lpaae_jax.main --config=configs/cifar10.py --workdir=runs/cifar10
      python -m lpaae_jax.main --config=configs/cifar10.py:supervised,fixed --workdir=...
Expected (DESIGN §5, paper's authors): Inception Score 7.31 (learned prior, `none`) vs 6.37
(fixed prior); supervised 6.52 vs 6.20; unsupervised 6.02 vs 5.73. Not yet reproduced by us,
and its time on an accelerator is unmeasured (on a 2-core CPU: days).
Its model's values below: experiments/cifar10_fidelity/README.md (width 16: lattice and
colour grain <= 2x real; width 64, 600 iterations: no lattice growing).
"""

from lpaae_jax.configs import default


def get_config(variant=None):
  config = default.get_config(variant)
  config.dataset = "cifar10"
  config.model.channels = 3
  config.num_train_steps = 100_000
  # Model and loss (SPEC §1/§5 leave them to us). Measured in experiments/cifar10_fidelity:
  # with the paper table's MNIST values every CIFAR-10 sample carries the transposed convs'
  # lattice and colour grain, and reconstructions keep only colour blobs.
  config.model.upsampling = "resize_conv"  # nearest 2x + 3x3 conv: no lattice
  config.model.decoder_norm = "batch"      # BatchNorm in the decoder's blocks: no colour grain
  config.loss.pixel_rec_weight = 30.0      # pixel MSE in L_rec: reconstructions keep the image
  config.loss.rec_weight_decoder = 3.0     # lambda: L_rec against the decoder's two GAN terms
  return config
