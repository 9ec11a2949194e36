"""Where Redis is: one server (`redis://`), or a primary found through Redis Sentinel.

Sentinel is configured either with `REDIS_SENTINELS=host:port,...` and `REDIS_SENTINEL_MASTER`
(REDIS_URL then only carries the database number and the password), or with one URL:
`redis+sentinel://[[user]:password@]host:port[,host:port...]/MASTER[/DB]`.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

SENTINEL_SCHEME = "redis+sentinel"
DEFAULT_SENTINEL_PORT = 26379


@dataclass(frozen=True, slots=True)
class RedisTarget:
    url: str  # a plain redis:// URL (its host is used only when there are no sentinels)
    sentinels: tuple[tuple[str, int], ...] = ()
    master: str = ""
    db: int = 0
    username: str | None = None
    password: str | None = None

    @property
    def uses_sentinel(self) -> bool:
        return bool(self.sentinels)

    def describe(self) -> str:
        """For logs and errors: where, never the password."""
        if self.uses_sentinel:
            hosts = ",".join(f"{h}:{p}" for h, p in self.sentinels)
            return f"sentinel {hosts} master {self.master!r} db {self.db}"
        parts = urlsplit(self.url)
        return f"redis {parts.hostname}:{parts.port or 6379} db {self.db}"


def parse_hosts(text: str) -> tuple[tuple[str, int], ...]:
    """`host:port,host:port` (port defaults to 26379) -> ((host, port), ...)."""
    hosts = []
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        if not sep:
            host, port = item, str(DEFAULT_SENTINEL_PORT)
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"a sentinel must be host:port, got {item!r}")
        hosts.append((host.strip("[]"), int(port)))
    return tuple(hosts)


def redis_target(redis_url: str, sentinels: str, master: str) -> RedisTarget:
    parts = urlsplit(redis_url)
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    if parts.scheme == SENTINEL_SCHEME:
        hosts = parse_hosts(parts.netloc.rpartition("@")[2])
        segments = [s for s in parts.path.split("/") if s]
        if not hosts or not segments or len(segments) > 2 or not _is_db(segments[1:]):
            raise ValueError(
                "REDIS_URL with redis+sentinel:// must look like "
                "redis+sentinel://[:password@]host:port[,host:port...]/MASTER[/DB]"
            )
        db = int(segments[1]) if len(segments) == 2 else 0
        return RedisTarget(redis_url, hosts, segments[0], db, username, password)
    if parts.scheme not in {"redis", "rediss", "unix"}:
        raise ValueError(f"REDIS_URL must be redis://, rediss://, unix:// or {SENTINEL_SCHEME}://")
    db_text = "0" if parts.scheme == "unix" else parts.path.strip("/") or "0"
    if not db_text.isdigit():
        raise ValueError(f"REDIS_URL database must be a number, got {db_text!r}")
    hosts = parse_hosts(sentinels) if sentinels.strip() else ()
    if hosts and not master:
        raise ValueError("REDIS_SENTINELS is set but REDIS_SENTINEL_MASTER is empty")
    return RedisTarget(redis_url, hosts, master if hosts else "", int(db_text), username, password)


def _is_db(segments: list[str]) -> bool:
    return all(s.isdigit() for s in segments)
