"""Shorthand names and profile URLs.

Every shorthand name ends in the base36 form of the employee id, so a name resolves without a
lookup table: decode a suffix, generate that profile, and check that the name really is one of
its `shorthand_names`.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
_PROFILE_PATH = re.compile(r"^/in/([^/]+)/?$")
# Longest base36 suffix worth trying: 36**8 is far beyond any simulated id.
MAX_SUFFIX = 8

PROFILE_URL_PREFIX = "https://www.linkedin.com/in/"


def base36(number: int) -> str:
    if number < 0:
        raise ValueError("base36 of a negative number")
    digits = []
    while True:
        number, rest = divmod(number, 36)
        digits.append(_DIGITS[rest])
        if number == 0:
            return "".join(reversed(digits))


def profile_url(slug: str) -> str:
    return f"{PROFILE_URL_PREFIX}{slug}/"


def slug_from_key(key: str) -> str | None:
    """The shorthand name a collect key refers to: the key itself, or the `/in/<slug>` segment.

    Accepts full profile URLs with or without scheme, `www.`, trailing slash or query string,
    percent-encoded or not. Returns None for any other URL.
    """
    text = unquote(key.strip())
    if "/" not in text:
        return text.lower() or None
    if "://" not in text:
        text = "https://" + text.lstrip("/")
    parts = urlsplit(text)
    host = (parts.hostname or "").removeprefix("www.")
    if host != "linkedin.com" and not host.endswith(".linkedin.com"):
        return None
    match = _PROFILE_PATH.match(parts.path)
    return unquote(match.group(1)).lower() if match else None


def suffix_candidates(slug: str) -> list[int]:
    """Numbers that the trailing base36 characters of `slug` may encode, shortest suffix first.

    The historical form `{first}{last}{id36}` has no separator, so the split point is unknown;
    trying each short suffix keeps resolution O(1).
    """
    candidates = []
    for length in range(1, min(MAX_SUFFIX, len(slug)) + 1):
        suffix = slug[-length:]
        if not all(ch in _DIGITS for ch in suffix):
            break
        candidates.append(int(suffix, 36))
    return candidates
