"""structlog set-up, in one function. JSON when stderr is not a TTY; secrets scrubbed from every event."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable
from typing import Any

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

# user:password@ in any URL-looking value, so a REDIS_URL/MONGODB_URL with credentials is never logged whole.
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):[^@/\s]*@", re.I)
REDACTED = "***"


def mask_url_credentials(text: str) -> str:
    """`scheme://user:password@host` → `scheme://user:***@host`, wherever it appears in `text`."""
    return _URL_CREDENTIALS.sub(rf"\g<scheme>\g<user>:{REDACTED}@", text)


def redact_text(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return mask_url_credentials(text)


class _Redactor:
    """Last line of defence: we never bind the API key, but an exception message might carry it."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self._secrets = tuple(s for s in secrets if s)

    def _clean(self, value: Any) -> Any:
        if isinstance(value, str):
            return redact_text(value, self._secrets)
        if isinstance(value, dict):
            return {k: self._clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._clean(v) for v in value]
        return value

    def __call__(self, _: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
        return {k: self._clean(v) for k, v in event_dict.items()}


def configure_logging(level: str = "INFO", *, json: bool | None = None, secrets: Iterable[str] = ()) -> None:
    """Configure structlog and route stdlib logging (arq, aiohttp) through the same renderer."""
    render_json = (not sys.stderr.isatty()) if json is None else json
    redactor = _Redactor(secrets)
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Processor = (
        structlog.processors.JSONRenderer()
        if render_json
        else structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    )
    # Tracebacks become plain text *before* the redactor, in both modes: the console renderer's own
    # (rich) formatter would run after it and print every frame's locals, Settings and all (review #13).
    tail: list[Processor] = [structlog.processors.format_exc_info, redactor, renderer]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # arq logs one line per job start/finish; our job summary line replaces them.
    logging.getLogger("arq.worker").setLevel(max(logging.WARNING, root.level))
