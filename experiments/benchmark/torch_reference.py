r"""A straightforward PyTorch eager implementation of DESIGN's networks and both phases, to
time against ours (issue: performance). Not part of the project: it runs in a separate
virtual environment with torch installed (never a dependency of lpaae_jax).

  /path/to/torch_venv/bin/python experiments/benchmark/torch_reference.py \
      --dataset=mnist --width=8 [--batch_size=64] [--repeats=5] [--json=out.json]

The model is DESIGN §1's (lpaae_jax/DESIGN.md) in the supervised setting with the learned
prior and our defaults: label tie "both" (a label-conditioned code discriminator and Q on
real images), fixed networks normalised by their batch statistics without updating their
running averages, L_rec over the three D_I conv layers, code adversary weight 0.1, every
other weight 1, Adam(2e-4, 0.5, 0.999) per network, float32. The decoder's transposed
convolutions are torch's own. One iteration is the AAE phase then the prior phase on one
batch of random images and labels; prints (and writes as JSON) the median milliseconds of
each phase and of the iteration over `repeats` timed iterations after `warmup` ones.
"""

import argparse
import json
import platform
import statistics
import time

import torch
from torch import nn
from torch.nn import functional as F

NUM_CLASSES = 10
LEAKY = 0.2


class ResBlock(nn.Module):
  """conv3x3 -> ReLU -> conv3x3 plus a skip (1x1 projection after pooling/upsampling when
  the resolution or channels change), ReLU after the sum."""

  def __init__(self, cin: int, cout: int, resample: str = "none"):
    super().__init__()
    self.resample = resample
    if resample == "down":
      self.conv1 = nn.Conv2d(cin, cout, 3, stride=2, padding=1)
    elif resample == "up":
      self.conv1 = nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1)
    else:
      self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
    self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
    self.project = (nn.Conv2d(cin, cout, 1) if resample != "none" or cin != cout else None)

  def forward(self, x):
    h = self.conv2(F.relu(self.conv1(x)))
    skip = x
    if self.resample == "down":
      skip = F.avg_pool2d(skip, 2)
    elif self.resample == "up":
      skip = F.interpolate(skip, scale_factor=2, mode="nearest")
    if self.project is not None:
      skip = self.project(skip)
    return F.relu(h + skip)


class Encoder(nn.Module):

  def __init__(self, channels: int, width: int, code_dim: int):
    super().__init__()
    self.stem = nn.Conv2d(channels, width, 3, padding=1)
    self.blocks = nn.Sequential(ResBlock(width, width), ResBlock(width, 2 * width, "down"),
                                ResBlock(2 * width, 4 * width, "down"),
                                ResBlock(4 * width, 8 * width, "down"))
    self.dense1 = nn.Linear(8 * width, 2 * code_dim)
    self.bn = nn.BatchNorm1d(2 * code_dim, momentum=0.1)
    self.dense2 = nn.Linear(2 * code_dim, code_dim)

  def forward(self, x):
    h = self.blocks(F.relu(self.stem(x))).mean(dim=(2, 3))
    return self.dense2(F.relu(self.bn(self.dense1(h))))


class Decoder(nn.Module):

  def __init__(self, channels: int, width: int, code_dim: int):
    super().__init__()
    self.width = width
    self.dense = nn.Linear(code_dim, 4 * 4 * 8 * width)  # = a 4x4 transposed conv on 1x1
    self.bn = nn.BatchNorm2d(8 * width, momentum=0.1)
    self.blocks = nn.Sequential(ResBlock(8 * width, 4 * width, "up"),
                                ResBlock(4 * width, 2 * width, "up"),
                                ResBlock(2 * width, width, "up"))
    self.out = nn.Conv2d(width, channels, 3, padding=1)

  def forward(self, z):
    h = self.dense(z).view(-1, 8 * self.width, 4, 4)
    return torch.tanh(self.out(self.blocks(F.relu(self.bn(h)))))


class CodeGenerator(nn.Module):

  def __init__(self, input_dim: int, noise_dim: int, code_dim: int):
    super().__init__()
    self.dense1 = nn.Linear(input_dim, 2 * noise_dim)
    self.bn1 = nn.BatchNorm1d(2 * noise_dim, momentum=0.1)
    self.dense2 = nn.Linear(2 * noise_dim, code_dim)
    self.bn2 = nn.BatchNorm1d(code_dim, momentum=0.1)

  def forward(self, inputs):
    return self.bn2(self.dense2(F.relu(self.bn1(self.dense1(inputs)))))


class ImageDiscriminator(nn.Module):
  """D_I with the Q head; returns (logit, Q logits, the three conv layers' features)."""

  def __init__(self, channels: int, width: int, hidden: int = 1000):
    super().__init__()
    self.conv1 = nn.Conv2d(channels, width, 4, stride=2, padding=1)
    self.conv2 = nn.Conv2d(width, 2 * width, 4, stride=2, padding=1)
    self.bn2 = nn.BatchNorm2d(2 * width, momentum=0.1)
    self.conv3 = nn.Conv2d(2 * width, 4 * width, 4, stride=2, padding=1)
    self.bn3 = nn.BatchNorm2d(4 * width, momentum=0.1)
    self.hidden = nn.Linear(4 * 4 * 4 * width, hidden)
    self.d = nn.Linear(hidden, 1)
    self.q = nn.Linear(hidden, NUM_CLASSES)

  def forward(self, x):
    f1 = F.leaky_relu(self.conv1(x), LEAKY)
    f2 = F.leaky_relu(self.bn2(self.conv2(f1)), LEAKY)
    f3 = F.leaky_relu(self.bn3(self.conv3(f2)), LEAKY)
    h = F.leaky_relu(self.hidden(f3.flatten(1)), LEAKY)
    return self.d(h)[:, 0], self.q(h), (f1, f2, f3)


class CodeDiscriminator(nn.Module):

  def __init__(self, input_dim: int):
    super().__init__()
    self.net = nn.Sequential(nn.Linear(input_dim, 1000), nn.LeakyReLU(LEAKY),
                             nn.Linear(1000, 500), nn.LeakyReLU(LEAKY), nn.Linear(500, 200),
                             nn.LeakyReLU(LEAKY), nn.Linear(200, 1))

  def forward(self, z):
    return self.net(z)[:, 0]


class frozen_batch_norm:  # pylint: disable=invalid-name
  """A network the phase keeps fixed: batch statistics, running averages not updated
  (momentum 0 leaves them as they are)."""

  def __init__(self, *modules):
    self.norms = [m for module in modules for m in module.modules()
                  if isinstance(m, nn.modules.batchnorm._BatchNorm)]

  def __enter__(self):
    self.saved = [m.momentum for m in self.norms]
    for m in self.norms:
      m.momentum = 0.0

  def __exit__(self, *exc):
    for m, momentum in zip(self.norms, self.saved):
      m.momentum = momentum


class fixed_parameters:  # pylint: disable=invalid-name
  """No parameter gradients for networks a backward pass only goes through (as ours
  differentiates only the networks a step updates)."""

  def __init__(self, *modules):
    self.parameters = [p for module in modules for p in module.parameters()]

  def __enter__(self):
    for parameter in self.parameters:
      parameter.requires_grad_(False)

  def __exit__(self, *exc):
    for parameter in self.parameters:
      parameter.requires_grad_(True)


def bce(logits, target: float):
  return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


class Model:
  """The five networks, one Adam each (DESIGN §3's encoder and decoder apart)."""

  def __init__(self, channels: int, width: int, code_dim: int = 64, noise_dim: int = 64):
    self.noise_dim = noise_dim
    self.encoder = Encoder(channels, width, code_dim)
    self.decoder = Decoder(channels, width, code_dim)
    self.code_generator = CodeGenerator(noise_dim + NUM_CLASSES, noise_dim, code_dim)
    self.image_disc = ImageDiscriminator(channels, width)
    self.code_disc = CodeDiscriminator(code_dim + NUM_CLASSES)
    self.optimizers = {
        name: torch.optim.Adam(getattr(self, name).parameters(), lr=2e-4, betas=(0.5, 0.999))
        for name in ("encoder", "decoder", "code_generator", "image_disc", "code_disc")}

  def prior_inputs(self, labels):
    noise = torch.randn(len(labels), self.noise_dim)
    return torch.cat([noise, F.one_hot(labels, NUM_CLASSES).float()], 1)

  def aae_phase(self, images, labels):
    onehot = F.one_hot(labels, NUM_CLASSES).float()
    with torch.no_grad(), frozen_batch_norm(self.code_generator, self.image_disc):
      prior_codes = self.code_generator(self.prior_inputs(labels))
      _, _, real_features = self.image_disc(images)
    codes = self.encoder(images)
    # Code discriminator: prior samples real, encoder codes fake.
    disc_loss = (bce(self.code_disc(torch.cat([prior_codes, onehot], 1)), 1.0)
                 + bce(self.code_disc(torch.cat([codes.detach(), onehot], 1)), 0.0))
    self.optimizers["code_disc"].zero_grad()
    disc_loss.backward()
    self.optimizers["code_disc"].step()
    # Encoder and decoder against the updated D_C (L_rec + 0.1 * fool D_C; the decoder's
    # gradient is that of L_rec alone, lambda = 1).
    with frozen_batch_norm(self.image_disc), fixed_parameters(self.image_disc,
                                                                self.code_disc):
      _, _, rec_features = self.image_disc(self.decoder(codes))
      rec_loss = sum(F.mse_loss(r, f) for r, f in zip(rec_features, real_features))
      adv_loss = bce(self.code_disc(torch.cat([codes, onehot], 1)), 1.0)
      for name in ("encoder", "decoder"):
        self.optimizers[name].zero_grad()
      (rec_loss + 0.1 * adv_loss).backward()
    for name in ("encoder", "decoder"):
      self.optimizers[name].step()

  def prior_phase(self, images, labels):
    with torch.no_grad(), frozen_batch_norm(self.encoder):
      codes = self.encoder(images)
    noise_images = self.decoder(self.code_generator(self.prior_inputs(labels)))
    rec_images = self.decoder(codes)
    # Image discriminator and Q: real vs both kinds of generated images; Q learns s on
    # generated images and the labels of real ones.
    real_logits, q_real, _ = self.image_disc(images)
    noise_logits, q_noise, _ = self.image_disc(noise_images.detach())
    rec_logits, _, _ = self.image_disc(rec_images.detach())
    disc_loss = (bce(real_logits, 1.0) + bce(noise_logits, 0.0) + bce(rec_logits, 0.0)
                 + F.cross_entropy(q_noise, labels) + F.cross_entropy(q_real, labels))
    self.optimizers["image_disc"].zero_grad()
    disc_loss.backward()
    self.optimizers["image_disc"].step()
    # Code generator and decoder against the updated D_I.
    with frozen_batch_norm(self.image_disc), fixed_parameters(self.image_disc):
      noise_logits, q_noise, _ = self.image_disc(noise_images)
      rec_logits, _, _ = self.image_disc(rec_images)
      generator_loss = (bce(noise_logits, 1.0) + bce(rec_logits, 1.0)
                        + F.cross_entropy(q_noise, labels))
      for name in ("code_generator", "decoder"):
        self.optimizers[name].zero_grad()
      generator_loss.backward()
    for name in ("code_generator", "decoder"):
      self.optimizers[name].step()


def run(dataset: str, width: int, batch_size: int, repeats: int, warmup: int) -> dict:
  channels = 1 if dataset == "mnist" else 3
  torch.manual_seed(0)
  model = Model(channels, width)
  images = torch.rand(batch_size, channels, 32, 32) * 2 - 1
  labels = torch.randint(0, NUM_CLASSES, (batch_size,))
  times = {"aae": [], "prior": [], "iteration": []}
  for index in range(warmup + repeats):
    start = time.perf_counter()
    model.aae_phase(images, labels)
    middle = time.perf_counter()
    model.prior_phase(images, labels)
    end = time.perf_counter()
    if index >= warmup:
      times["aae"].append(middle - start)
      times["prior"].append(end - middle)
      times["iteration"].append(end - start)
  return {
      "framework": f"torch {torch.__version__} eager", "threads": torch.get_num_threads(),
      "machine": platform.machine(), "dataset": dataset, "width": width,
      "batch_size": batch_size, "repeats": repeats, "warmup": warmup,
      "ms": {phase: 1000 * statistics.median(values) for phase, values in times.items()},
  }


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--dataset", choices=("mnist", "cifar10"), default="mnist")
  parser.add_argument("--width", type=int, default=8)
  parser.add_argument("--batch_size", type=int, default=64)
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--warmup", type=int, default=2)
  parser.add_argument("--json", default=None)
  args = parser.parse_args()
  result = run(args.dataset, args.width, args.batch_size, args.repeats, args.warmup)
  print(json.dumps(result, indent=2))
  if args.json:
    with open(args.json, "w", encoding="utf-8") as out:
      json.dump(result, out, indent=2)


if __name__ == "__main__":
  main()
