"""The config a run stored in its workdir, as a config file for `--config`, so that the
stored config takes `--config.*` overrides:

  lpaae-evaluate --workdir=W --config=/path/to/lpaae_jax/stored_config.py:W \\
      --config.eval.use_inception=False

`lpaae-evaluate --workdir=W --config.<field>=...` (overrides without --config) passes it
itself.
"""

from lpaae_jax import provenance


def get_config(workdir: str):
  return provenance.load_config(workdir)
