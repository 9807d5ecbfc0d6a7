"""configs/cifar10.py's model at test scale on real CIFAR-10 (width 8, 60 iterations): the
autoencoder reconstructs. experiments/cifar10_fidelity measures the same model at CPU
scale."""

from experiments.cifar10_fidelity import run as fidelity_run
from tests.helpers import reconstruction_and_mean_image_mse, tiny_config, train_on_real_data

FULL_XLA_OPTIMIZATION = True  # the run's compiled steps run fast (tests/helpers.py)

# Measured (500 test images, mean image 0.231): reconstruction MSE 0.151 after 60
# iterations, 0.150 / 0.153 / 0.155 after 100 / 140 / 200; 0.152 from the first 4,000
# training images (60 x 32 = 1,920 are used; decoding all 50k took half the test's time).
STEPS = 60


def test_cifar10_model_reconstructs_real_images(real_data_dir):
  config = tiny_config("none", "learned", **{
      "dataset": "cifar10", "model.channels": 3, "data_dir": str(real_data_dir),
      "download": False, "train_split": "train[:4000]", **fidelity_run.cifar10_defaults(),
      "model.width": 8, "model.code_dim": 32, "model.noise_dim": 32, "batch_size": 32,
      "optim.learning_rate": 1e-3})
  states = train_on_real_data(config, STEPS)
  reconstruction_mse, mean_image_mse = reconstruction_and_mean_image_mse(config, states)
  print(f"\nreconstruction MSE {reconstruction_mse:.3f}; predicting the mean test image: "
        f"{mean_image_mse:.3f}")
  assert reconstruction_mse < 0.75 * mean_image_mse
