"""The base class of every error lpaae_jax raises on purpose.

Such an error's one-line message names the problem and its fix, so the commands
(`lpaae_jax.cli`) print the message alone, without a traceback; any other exception is a
bug or an environment failure nobody anticipated and keeps its traceback. Each subclass
also derives from the builtin type that fits it (ValueError, OSError, ...), so callers
can catch either.
"""


class LpaaeError(Exception):
  """An anticipated failure whose message is complete: shown alone by the commands."""


def first_line(error: BaseException, limit: int = 200) -> str:
  """The first line of an exception's message (its type's name when it has none),
  truncated to `limit` characters: what our one-line errors quote of another's."""
  lines = str(error).strip().splitlines()
  text = lines[0] if lines else type(error).__name__
  return text if len(text) <= limit else text[:limit - 3] + "..."


def innermost(error: "BaseException | None") -> "LpaaeError | None":
  """The LpaaeError that `error` is, or was raised from or while handling, if any: the
  innermost one carries the original message (ml_collections and absl re-raise a config
  file's errors as theirs; a failing clean-up raises while ours propagates)."""
  seen = set()
  found = None
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    if isinstance(error, LpaaeError):
      found = error
    error = error.__cause__ or error.__context__
  return found
