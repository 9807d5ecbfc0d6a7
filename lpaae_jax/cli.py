"""What the commands share: absl's `app.run` with one-line errors and a readable log.

Every command (`lpaae-train` = `python -m lpaae_jax.main`, `lpaae-evaluate`,
`lpaae-benchmark`, the judge) runs its main through `run`:

  * An `errors.LpaaeError` (a bad config value or file, missing data, an unusable workdir
    or checkpoint, a full disk, ...) ends the command with `error: <message>` on stderr,
    its last line, and exit code 1, without a traceback; so does a misspelt config field or
    a config file that cannot be loaded, and any exception raised while ours propagated (a
    failing clean-up). Any other exception is unexpected and keeps its traceback.
  * The log keeps every line of ours and of clu's (progress with ETA, metrics); of the other
    libraries (Orbax, tfds, jax, ...) only warnings and errors, without their tracebacks.

`--verbose` keeps both: the traceback of our errors and every library's INFO lines.
"""

import difflib
import logging
import os
import sys
import textwrap
from typing import Any, Callable, NoReturn, Optional

from absl import app
from absl import flags
from absl import logging as absl_logging
import clu
from ml_collections import config_flags

import lpaae_jax
from lpaae_jax import config_validation
from lpaae_jax import errors

FLAGS = flags.FLAGS
# Records logged from these directories are ours, or clu's progress and metric lines.
_OUR_LOG_DIR, _CLU_LOG_DIR = (os.path.dirname(os.path.abspath(module.__file__)) + os.sep
                              for module in (lpaae_jax, clu))


class LibraryLogFilter(logging.Filter):
  """Drops other libraries' records below WARNING and strips every library's tracebacks
  (clu's included); drops every record once the command has reported its error
  (`after_error`)."""

  after_error = False

  def filter(self, record: logging.LogRecord) -> bool:
    if LibraryLogFilter.after_error:
      return False
    if record.pathname.startswith(_OUR_LOG_DIR):
      return True
    if record.levelno < logging.WARNING and not record.pathname.startswith(_CLU_LOG_DIR):
      return False
    # Orbax logs each failing background thread with its traceback, clu its summary
    # writer's; our error explains them.
    record.exc_info = record.exc_text = record.stack_info = None
    return True


def quiet_library_logs() -> None:
  """Installs LibraryLogFilter on absl's handler, which every logger reaches."""
  handler = absl_logging.get_absl_handler()
  if not any(isinstance(f, LibraryLogFilter) for f in handler.filters):
    handler.addFilter(LibraryLogFilter())


def log_to_notebook() -> None:
  """Outside a command (a notebook, an interactive session), where absl logs warnings only:
  the commands' log on stderr, i.e. progress with ETA, metrics and checkpoint events, and
  of the other libraries warnings and errors."""
  absl_logging.use_absl_handler()
  absl_logging.set_verbosity(absl_logging.INFO)
  quiet_library_logs()


def _fail(error: BaseException) -> NoReturn:
  """Prints `error: <message>` as the command's last line and ends the process at once:
  after a failure, background threads (Orbax's saves, clu's summary writer) may fail again
  and report it with tracebacks; nothing they could still finish matters then."""
  LibraryLogFilter.after_error = True
  sys.stdout.flush()
  print(f"error: {error}", file=sys.stderr, flush=True)
  os._exit(1)  # pylint: disable=protected-access


def _unloadable_config_file(name: str, flag) -> Optional[config_validation.ConfigError]:
  """ml_collections defers a config file it cannot open to the first use of the config,
  which then fails inside the command; this names the file and the fix at once."""
  try:
    flag.value.keys()  # a failed load raises here, on any attribute
    return None
  except (OSError, AttributeError) as error:
    path = config_flags.get_config_filename(flag)
    if not os.path.isfile(path):
      where = "" if os.path.isabs(path) else f" in the working directory {os.getcwd()}"
      return config_validation.ConfigError(
          f"--{name}={path}: no such file{where}: pass a config file such as "
          "/path/to/checkout/configs/mnist.py.")
    reason = (str(error).strip().splitlines() or [type(error).__name__])[-1].strip()
    return config_validation.ConfigError(f"--{name}={path}: the config file does not load "
                                         f"({reason}).")


def flag_and_subfields(argv: list[str], name: str) -> tuple[Optional[str], list[str]]:
  """From argv: the value of --NAME (e.g. a config file, perhaps with ':argument') and the
  dotted paths that --NAME.<path> overrides name."""
  spec, paths = None, []
  for i, arg in enumerate(argv):
    if arg == f"--{name}" and i + 1 < len(argv):
      spec = argv[i + 1]
    elif arg.startswith(f"--{name}="):
      spec = arg.split("=", 1)[1]
    elif arg.startswith(f"--{name}."):
      paths.append(arg[len(name) + 3:].split("=", 1)[0])
  return spec, paths


def _nearest_field(config, path: list[str]) -> Optional[str]:
  """The config field nearest to a misspelt dotted path: a sibling of its last part, else
  the nearest whole path, else a field anywhere with the nearest last part."""
  from ml_collections import config_dict  # pylint: disable=g-import-not-at-top
  fields = []
  def walk(node, prefix):
    for key in node.keys():
      fields.append(prefix + key)
      if isinstance(node[key], config_dict.ConfigDict):
        walk(node[key], prefix + key + ".")
  walk(config, "")
  parent = ".".join(path[:-1])
  siblings = [f for f in fields if f.rpartition(".")[0] == parent]
  for wanted, candidates in ((".".join(path), siblings), (".".join(path), fields)):
    match = difflib.get_close_matches(wanted, candidates, n=1, cutoff=0.75)
    if match:
      return match[0]
  by_last_part = {f.rpartition(".")[2]: f for f in reversed(fields)}
  match = difflib.get_close_matches(path[-1], list(by_last_part), n=1, cutoff=0.75)
  return by_last_part[match[0]] if match else None


def _has_field(config, dotted: str) -> bool:
  node = config
  for part in dotted.split("."):
    if not hasattr(node, "keys") or part not in node.keys():
      return False
    node = node[part]
  return True


def _misspelt_override(argv: list[str], name: str = "config"
                       ) -> Optional[config_validation.ConfigError]:
  """A --config.<path> override that names no field of the config: the path and the
  nearest real field, in one line (ml_collections raises a bare KeyError/AttributeError)."""
  spec, paths = flag_and_subfields(argv, name)
  if spec is None or name not in FLAGS:
    return None
  try:
    config = FLAGS[name].parser.parse(spec)
  except Exception:  # pylint: disable=broad-except  (the file itself fails: reported later)
    return None
  for dotted in paths:
    parts = dotted.split(".")
    for depth in range(len(parts)):
      if not _has_field(config, ".".join(parts[:depth + 1])):
        nearest = _nearest_field(config, parts[:depth + 1])
        rest = parts[depth + 1:]
        if nearest and rest and _has_field(config, f"{nearest}.{'.'.join(rest)}"):
          nearest = f"{nearest}.{'.'.join(rest)}"  # --config.modle.width: model.width
        hint = f"did you mean --{name}.{nearest}?" if nearest else f"see {spec}."
        return config_validation.ConfigError(
            f"--{name}.{dotted}: the config has no field {'.'.join(parts[:depth + 1])}; "
            f"{hint}")
  return None


def _parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing; our errors (e.g. a config variant), misspelt config fields and
  unloadable config files as one line, other flag errors as absl reports them."""
  verbose = any(arg in ("--verbose", "--verbose=true", "--verbose=True") for arg in argv)
  try:
    remaining = FLAGS(argv)
  except (AttributeError, KeyError):
    misspelt = _misspelt_override(argv)
    if misspelt is None or verbose:
      raise
    _fail(misspelt)
  except flags.Error as error:
    ours = errors.innermost(error)
    if ours is not None and not verbose:
      _fail(ours)
    # As absl's own parser reports a flag error (parsing again would redefine the
    # config's override flags).
    message = str(error)
    message = f"\n{textwrap.indent(message, '  ')}\n" if "\n" in message else f" {message}\n"
    sys.stderr.write(f"FATAL Flags parsing error:{message}"
                     "Pass --helpshort or --helpfull to see help on flags.\n")
    sys.exit(1)
  # Every command's config file flag is --config.
  if "config" in FLAGS and FLAGS["config"].value is not None and not FLAGS.verbose:
    problem = _unloadable_config_file("config", FLAGS["config"])
    if problem is not None:
      _fail(problem)
  return remaining


def _quiet_closed_loop_callbacks() -> None:
  """After a failed save, tensorstore's callbacks into Orbax's closed event loop each print
  "RuntimeError: Event loop is closed" with a traceback (through sys.unraisablehook), up to
  thousands of lines around the error that explains them: dropped."""
  default = sys.unraisablehook

  def unraisablehook(unraisable):
    value = unraisable.exc_value
    if not (isinstance(value, RuntimeError) and str(value) == "Event loop is closed"):
      default(unraisable)

  sys.unraisablehook = unraisablehook


def _report_errors(main: Callable[[list[str]], Any], argv: list[str]) -> Any:
  if FLAGS.verbose:
    return main(argv)
  quiet_library_logs()
  _quiet_closed_loop_callbacks()
  try:
    return main(argv)
  except Exception as error:  # pylint: disable=broad-except  (re-raised unless ours)
    ours = errors.innermost(error)  # also when a clean-up failed while ours propagated
    if ours is None:
      raise
    _fail(ours)


def run(main: Callable[[list[str]], Any], argv: Optional[list[str]] = None) -> None:
  """`app.run(main)` with the behaviour of the module docstring; call it once per process,
  after the command has defined its flags. argv: sys.argv by default."""
  flags.DEFINE_bool("verbose", False, "Show the traceback of lpaae_jax's errors and every "
                    "library's INFO log lines (default: a one-line error; warnings only).")
  app.run(lambda argv: _report_errors(main, argv), argv=argv, flags_parser=_parse_flags)
