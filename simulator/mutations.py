"""The kinds of change a simulated profile goes through, and how each rewrites a career.

A profile's history is a tuple of `Change`s; `simulator.profiles.build_profile` replays it, step k
drawing from its own `Random(f"{seed}:{index}:{k}")`, so a history always rebuilds the same
document. Kinds (they name what the experience[] diff shows, see `worker.change_events`):

- `role_started`: the open role (if any) closes last month and a new open role starts this month
  at another company (a job change: the diff shows role_ended + role_started);
- `role_ended`: the open role gets a `date_to` (this month) and nothing replaces it;
- `role_changed`: the open role (else the most recent one) gets a new title and level on the same
  position (a promotion), or one in four times a new company on the same position (a rebrand or
  acquisition); `date_from` stays, so the position keeps its identity;
- `other`: a non-experience field moves: headline, location, skills or connection counts.

`day` None is the legacy step of `POST /_sim/profiles/{id}/mutate`: `last_updated` moves
`CHANGE_STEP` past the previous one. A dated change moves it to that day (at least one day past the
previous value, so `last_updated` strictly increases with every change).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal, get_args

from simulator.careers import Role, job_title, month_start
from simulator.wordlists import COMPANIES, GENERAL_SKILLS, HEADLINE_TAILS, PLACES

type ChangeKind = Literal["role_started", "role_ended", "role_changed", "other"]
CHANGE_KINDS: tuple[ChangeKind, ...] = get_args(ChangeKind.__value__)
# Which kinds trigger experience-change webhooks (spec §9.2: a new position, or an open one
# closed; promotions at the same company do not).
EXPERIENCE_KINDS: frozenset[ChangeKind] = frozenset({"role_started", "role_ended"})
OTHER_VARIANTS = ("headline", "location", "skills", "connections")

# A promotion moves up this ladder (levels off it, e.g. Owner, stay and only retitle).
_LADDER = (
    "Intern", "Specialist", "Senior", "Manager", "Head", "Director", "President/Vice President", "C-Level",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Change:
    kind: ChangeKind
    day: date | None = None


@dataclass(slots=True)
class Mutable:
    """The parts of a profile a change may rewrite before the document is rendered."""

    roles: list[Role]
    tail: str
    skills: list[str]
    place: int | None = None  # index into PLACES; None keeps the generated location
    connections_delta: int = 0


def end_role(roles: list[Role], when: date) -> bool:
    """Close every open role this month; False if there was none."""
    closed = False
    for role in roles:
        if role.date_to is None:
            role.date_to = max(role.date_from, month_start(when))
            closed = True
    return closed


def change_role(roles: list[Role], rng: random.Random) -> None:
    """New title (and level) or new company on the same position: its `date_from` stays."""
    if not roles:
        return
    open_roles = [role for role in roles if role.date_to is None]
    role = open_roles[-1] if open_roles else roles[-1]
    if rng.random() < 0.25:
        role.company = (role.company + 1 + rng.randrange(len(COMPANIES) - 1)) % len(COMPANIES)
        return
    if role.level in _LADDER and role.level != _LADDER[-1]:
        role.level = _LADDER[_LADDER.index(role.level) + 1]
    old_title = role.title
    for _ in range(8):
        role.title = job_title(rng, role.level, role.department)
        if role.title != old_title:
            return
    role.title = f"Senior {old_title}"  # some levels have one title only: still a new title


def change_other(state: Mutable, rng: random.Random) -> None:
    variant = rng.choice(OTHER_VARIANTS)
    if variant == "headline":
        state.tail = _another(rng, HEADLINE_TAILS, state.tail)
    elif variant == "location":
        state.place = rng.randrange(len(PLACES))
    elif variant == "skills":
        missing = [skill for skill in GENERAL_SKILLS if skill not in state.skills]
        if missing:
            state.skills.append(rng.choice(missing))
        else:
            state.skills.pop()
    else:
        state.connections_delta += rng.randint(1, 40)


def _another(rng: random.Random, choices: tuple[str, ...], current: str) -> str:
    others = [choice for choice in choices if choice != current]
    return rng.choice(others) if others else current


def apply_connections(doc: dict[str, Any], delta: int) -> None:
    if delta:
        doc["connections_count"] = min(500, doc["connections_count"] + delta)
        doc["follower_count"] = doc["follower_count"] + delta
