"""Where Redis is: REDIS_URL alone, REDIS_SENTINELS + REDIS_SENTINEL_MASTER, or a redis+sentinel:// URL."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from config import Settings
from config.redis_target import RedisTarget


def target(**env: str) -> RedisTarget:
    return Settings.model_validate(env).redis_target()


def test_a_plain_url_is_one_server() -> None:
    plain = target(redis_url="redis://:pw@10.0.0.5:6380/3")
    assert not plain.uses_sentinel
    assert (plain.url, plain.db, plain.password) == ("redis://:pw@10.0.0.5:6380/3", 3, "pw")


def test_sentinels_with_a_master_name_take_the_database_and_password_from_the_url() -> None:
    ha = target(
        redis_url="redis://:s3cret@ignored/2",
        redis_sentinels="10.0.0.1:26379, 10.0.0.2:26380,10.0.0.3",
        redis_sentinel_master="primary",
    )
    assert ha.sentinels == (("10.0.0.1", 26379), ("10.0.0.2", 26380), ("10.0.0.3", 26379))
    assert (ha.master, ha.db, ha.password) == ("primary", 2, "s3cret")
    assert "s3cret" not in ha.describe()


def test_a_sentinel_url_names_sentinels_master_and_database() -> None:
    ha = target(redis_url="redis+sentinel://:pw@127.0.0.1:26379,127.0.0.1:26380/mymaster/4")
    assert ha.sentinels == (("127.0.0.1", 26379), ("127.0.0.1", 26380))
    assert (ha.master, ha.db, ha.password) == ("mymaster", 4, "pw")
    assert target(redis_url="redis+sentinel://h:1/m").db == 0
    assert "pw" in Settings.model_validate({"redis_url": ha.url}).secrets()


@pytest.mark.parametrize(
    "env",
    [
        {"redis_url": "redis+sentinel://h:1"},  # no master name
        {"redis_url": "redis+sentinel://h:1/m/x"},  # database not a number
        {"redis_url": "redis+sentinel:///m/0"},  # no sentinel
        {"redis_url": "http://h:1/0"},
        {"redis_url": "redis://h/0", "redis_sentinels": "h:notaport"},
        {"redis_url": "redis://h/0", "redis_sentinels": "h:1", "redis_sentinel_master": ""},
    ],
)
def test_a_bad_redis_setting_is_a_configuration_error(env: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        Settings.model_validate(env)
