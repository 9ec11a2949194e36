"""What `employee-sync` prints when a command cannot do its job: one line, no traceback, no secret.

Everything an operator can cause (a missing setting, a store that does not answer, an unreadable file,
a port in use) is named in one line with the setting, URL or file involved, passwords masked. Only a
bug prints a traceback, and that too goes through the redactor.
"""

from __future__ import annotations

import errno
import os
import socket
import traceback

from config import SettingMissingError, Settings
from config.logging import mask_url_credentials, redact_text
from worker.errors import (
    ConfigError,
    EmployeeSyncError,
    RedisUnavailableError,
    StoreUnavailableError,
)

EXIT_FAILED, EXIT_USAGE = 1, 2

# Binding a listening socket fails with these when the address is taken, foreign or privileged.
LISTEN_ERRNOS = frozenset({errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES})


class ListenError(Exception):
    """A server command could not listen on its address (raised by the CLI, reported as one line)."""


def describe(exc: Exception, settings: Settings) -> tuple[str, int]:
    """The line to print for a command that failed with `exc`, and the exit code."""
    message, code = _describe(exc, settings)
    return redact_text(message, settings.secrets()), code


def _describe(exc: Exception, settings: Settings) -> tuple[str, int]:
    if isinstance(exc, SettingMissingError | ConfigError):
        return f"configuration error: {exc}", EXIT_USAGE
    if isinstance(exc, StoreUnavailableError):
        where = f"MongoDB at {mask_url_credentials(settings.mongodb_url)}"
        return f"error: {where} did not answer: {str(exc).removeprefix('MongoDB ')}", EXIT_FAILED
    if isinstance(exc, RedisUnavailableError):
        where = f"Redis at {mask_url_credentials(settings.redis_url)}"
        return f"error: {where} did not answer: {str(exc).removeprefix('Redis ')}", EXIT_FAILED
    if isinstance(exc, EmployeeSyncError | ListenError):
        return f"error: {exc}", EXIT_FAILED
    if isinstance(exc, OSError):
        return f"error: {exc.strerror or exc}", EXIT_FAILED
    return "internal error (a bug; please report it):\n" + traceback.format_exc().rstrip(), EXIT_FAILED


def listen_error(exc: OSError, host: str, port: int) -> ListenError | None:
    """A ListenError for a failed bind or an unknown host, None for any other OSError."""
    if isinstance(exc, socket.gaierror):
        reason = f"unknown host ({exc.strerror or exc})"
    elif exc.errno in LISTEN_ERRNOS:
        reason = os.strerror(exc.errno)
    else:
        return None
    return ListenError(f"cannot listen on {host}:{port}: {reason}")


def read_error(exc: OSError, source: str) -> str:
    """One line for an input file that cannot be opened or read."""
    if isinstance(exc, FileNotFoundError):
        return f"error: no such file: {source}"
    if isinstance(exc, IsADirectoryError):
        return f"error: {source} is a directory, not a file"
    return f"error: cannot read {source}: {exc.strerror or exc}"
