"""The errors a user can mend, and the one way they are printed.

A module that defines such an error registers it with `@user_error` beside its definition; the CLI
turns any of them into one `fastdrop: error:` line with exit code 2. The registry lives here, at the
bottom of the house, so that reporting an error never imports the modules that raise them.
"""
from __future__ import annotations

import sys

_USER_ERRORS: list[type] = []


def user_error(cls: type) -> type:
    """Class decorator: `cls` is a mistake in the user's input (config, data, a busy run directory)."""
    _USER_ERRORS.append(cls)
    return cls


def user_errors() -> tuple[type, ...]:
    """Every registered user error (for `except user_errors():`, evaluated when an error is raised, so
    the module that raised it has registered its class by then)."""
    return tuple(_USER_ERRORS)


def print_error(msg: str, prog: str = "fastdrop") -> None:
    """The one `fastdrop: error: <msg>` line on stderr."""
    print(f"{prog}: error: {msg}", file=sys.stderr, flush=True)


@user_error
class ConfigError(ValueError):
    """A config the schema accepts but fastdrop cannot run (a range, a name, a cross-key rule)."""
