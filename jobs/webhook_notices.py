"""Webhook notices (spec §9.3/§9.3b): the documented body, its validation, and our own identities.

The upstream sends `[{"member_id": N, "status": "changed"}, ...]` (profile-change webhooks add
`"changed_fields": [...]`) with no signature, event id or timestamp. So authenticity is the
capability token in the URL, and idempotency is built here: the body's SHA-256 per subscription
(an exact re-send) and the (member id, status, ISO week) key (the same news twice in a week).
Pure: no IO.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from worker.errors import InputError

RECEIVER_PATH = "/v1/webhooks/coresignal/"
TOKEN_BYTES = 32
# A token as we mint it: URL-safe base64 of 32 random bytes. Anything else is not ours (404).
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{20,128}")
_ITEM_KEYS = frozenset({"member_id", "status", "changed_fields"})
MAX_STATUS_CHARS = 64
KNOWN_STATUSES = frozenset({"changed", "changed_experience"})


class NoticeShapeError(InputError):
    """The body is not the documented notice list (→ 400)."""


class TooManyNoticesError(InputError):
    """More notices in one body than WEBHOOK_MAX_NOTICES (→ 413)."""


@dataclass(frozen=True, slots=True)
class Notice:
    member_id: int
    status: str


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def plausible_token(token: str) -> bool:
    return bool(_TOKEN_SHAPE.fullmatch(token))


def same_hash(stored: str, presented: str) -> bool:
    """Constant-time comparison of two token hashes (the lookup found a candidate by its hash)."""
    return hmac.compare_digest(stored.encode(), presented.encode())


def receiver_url(base_url: str, token: str) -> str:
    return base_url.rstrip("/") + RECEIVER_PATH + token


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def inbox_id(subscription_id: str, body: bytes) -> str:
    return f"{subscription_id}:{body_digest(body)}"


def parse_notices(body: bytes, max_notices: int) -> list[Notice]:
    """The notices of a body, in order; raises NoticeShapeError / TooManyNoticesError."""
    if not body.strip():
        raise NoticeShapeError("empty body: expected a JSON list of notices")
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise NoticeShapeError(f"not JSON: {exc}") from exc
    if not isinstance(data, list) or not data:
        raise NoticeShapeError('expected a non-empty JSON list of {"member_id", "status"} objects')
    if len(data) > max_notices:
        raise TooManyNoticesError(f"{len(data)} notices in one body; at most {max_notices}")
    return [_notice(index, item) for index, item in enumerate(data)]


def _notice(index: int, item: object) -> Notice:
    if not isinstance(item, dict) or not _ITEM_KEYS.issuperset(item):
        raise NoticeShapeError(f"notice {index}: expected an object with member_id and status only")
    member_id, status = item.get("member_id"), item.get("status")
    if isinstance(member_id, bool) or not isinstance(member_id, int) or member_id <= 0:
        raise NoticeShapeError(f"notice {index}: member_id must be a positive integer")
    if not isinstance(status, str) or not status or len(status) > MAX_STATUS_CHARS:
        raise NoticeShapeError(f"notice {index}: status must be a short non-empty string")
    fields = item.get("changed_fields")
    if fields is not None and not (isinstance(fields, list) and all(isinstance(f, str) for f in fields)):
        raise NoticeShapeError(f"notice {index}: changed_fields must be a list of strings")
    return Notice(member_id, status)


def notice_key(notice: Notice, received_at: datetime) -> str:
    """(member id, status, ISO week of receipt): the same news twice in one week is one refresh."""
    year, week, _ = received_at.isocalendar()
    return f"{notice.member_id}:{notice.status}:{year}-W{week:02d}"


def status_label(status: str) -> str:
    """A metric label: upstream text reduced to a fixed vocabulary."""
    return status if status in KNOWN_STATUSES else "other"
