"""What a run that ends badly tells the user: one line, and the exit code that goes with it.

The script prints ``error: <line>`` and exits with the code; a scheduler reads the code,
a person the line. dlt wraps every step's failure in its own exceptions, so the line
names the reason inside them, and a missing driver or destination setting is named the
way the user fixes it (the extra to install, the variable or file to set).
"""

from __future__ import annotations

from pathlib import Path

import dlt.destinations
from dlt.common.configuration.exceptions import (
    ConfigFieldMissingException,
    ConfigurationException,
    ConfigValueCannotBeCoercedException,
)
from dlt.common.configuration.providers.toml import TomlProviderReadException
from dlt.common.destination.exceptions import UnknownDestinationModule
from dlt.common.exceptions import DltException

from tikpay_source.errors import ConfigError, RunLocked, TikpayError
from tikpay_source.settings import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_LOCKED


def root_cause(exc: BaseException) -> BaseException:
    """dlt wraps a step's failure; the user wants the reason inside its wrappers.

    Only dlt's own wrappers are opened: the first exception that is not one is the cause,
    whatever it was raised while handling (a ``StopIteration`` inside a generator, say).
    """
    seen = exc
    while isinstance(seen, DltException):
        context = None if seen.__suppress_context__ else seen.__context__
        inner = getattr(seen, "exception", None) or seen.__cause__ or context
        if inner is None or inner is seen:
            return seen
        seen = inner
    return seen


def missing_destination_setting(exc: ConfigFieldMissingException) -> str:
    """A destination setting dlt could not find, named as the user gives it: an environment variable or a file."""
    name = exc.spec_name.removesuffix("ClientConfiguration").removesuffix("Destination").lower()
    field = exc.fields[0]
    variable = f"DESTINATION__{name.upper()}__{field.upper()}"
    return (
        f"destination {name} needs {field}: set {variable} or [destination.{name}] {field} in "
        ".dlt/secrets.toml (see docs/warehouses.md)"
    )


# the extras of pyproject.toml that bring a destination's driver, by the module that is missing
EXTRA_OF_MODULE = {
    "psycopg2": "postgres",
    "google": "bigquery",
    "snowflake": "snowflake",
    "s3fs": "filesystem",
    "deltalake": "delta",
    "gcsfs": "gs",
    "adlfs": "az",
}


def error_line(exc: BaseException) -> tuple[str, int]:
    """One line for the user and the exit code, for anything a run can end with."""
    module = (exc.name or "").split(".")[0] if isinstance(exc, ModuleNotFoundError) else ""
    if module in EXTRA_OF_MODULE:
        extra = EXTRA_OF_MODULE[module]
        return f'{module} is not installed: pip install -e ".[{extra}]" (the {extra} extra)', EXIT_BAD_INPUT
    if isinstance(exc, TomlProviderReadException):
        where = next((p for p in exc.full_paths if Path(p).is_file()), exc.file_name)
        reason = " ".join(str(exc).splitlines()[1:]).strip() or "it is not valid TOML"
        return f"{where} is not valid TOML: {reason}", EXIT_BAD_INPUT
    if isinstance(exc, UnknownDestinationModule):
        choices = ", ".join(sorted(name for name in dlt.destinations.__all__ if name != "destination"))
        return f"destination {exc.ref!r} is not a dlt destination; choose one of {choices}", EXIT_BAD_INPUT
    if isinstance(exc, ConfigValueCannotBeCoercedException):
        expected = getattr(exc.hint, "__name__", str(exc.hint))
        return f"{exc.field_name} {exc.field_value!r} is not a valid {expected}", EXIT_BAD_INPUT
    if isinstance(exc, ConfigFieldMissingException) and exc.spec_name.endswith("ClientConfiguration"):
        return missing_destination_setting(exc), EXIT_BAD_INPUT
    if isinstance(exc, ConfigError | ConfigurationException):
        return str(exc).strip().splitlines()[0], EXIT_BAD_INPUT
    if isinstance(exc, RunLocked):
        return str(exc), EXIT_LOCKED
    if isinstance(exc, TikpayError):
        return str(exc), EXIT_FAILED
    if isinstance(exc, DltException):
        cause = root_cause(exc)
        if cause is not exc:
            return error_line(cause)
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": "), EXIT_FAILED
