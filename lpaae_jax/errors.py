"""The base class of every error lpaae_jax raises on purpose.

Such an error's one-line message names the problem and its fix, so the commands
(`lpaae_jax.cli`) print the message alone, without a traceback; any other exception is a
bug or an environment failure nobody anticipated and keeps its traceback. Each subclass
also derives from the builtin type that fits it (ValueError, OSError, ...), so callers
can catch either.
"""


class LpaaeError(Exception):
  """An anticipated failure whose message is complete: shown alone by the commands."""
