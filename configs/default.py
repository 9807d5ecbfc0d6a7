"""Default hyperparameters of lpaae_jax (DESIGN §4); dataset configs override a few fields.

The config itself is lpaae_jax/configs/default.py, installed with the package (its docstring
gives the command, time and expected result); this file lets `--config=configs/default.py`
name it from a checkout.
"""

from lpaae_jax.configs.default import get_config  # pylint: disable=unused-import
