"""Settings: one object, validated at the edge."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from config import Settings


@pytest.mark.parametrize(
    "url",
    ["http://api.coresignal.com/cdapi", "http://10.0.0.5:8000/cdapi", "ftp://127.0.0.1/cdapi", "not a url"],
)
def test_plain_http_or_odd_base_urls_are_refused(url: str) -> None:
    with pytest.raises(ValidationError, match="CORESIGNAL_BASE_URL"):
        Settings(coresignal_base_url=url)


@pytest.mark.parametrize(
    "url",
    [
        "https://api.coresignal.com/cdapi",
        "http://127.0.0.1:8010/cdapi",
        "http://localhost:8010/cdapi/",
        "http://[::1]:8010/cdapi",
    ],
)
def test_https_or_loopback_http_is_accepted(url: str) -> None:
    assert Settings(coresignal_base_url=url).coresignal_base_url == url.rstrip("/")


def test_defaults_follow_the_documented_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("COLLECT_RPS", "SEARCH_RPS", "BULK_RPS", "CORESIGNAL_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert (settings.collect_rps, settings.search_rps, settings.bulk_rps) == (54, 18, 27)
    assert settings.coresignal_base_url == "https://api.coresignal.com/cdapi"


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLLECT_RPS", "10")
    monkeypatch.setenv("CORESIGNAL_API_KEY", "k" * 32)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.collect_rps == 10
    assert settings.require_api_key() == "k" * 32
    assert "k" * 32 not in repr(settings)  # a SecretStr never prints


@pytest.mark.parametrize(
    "url",
    ["https://api.coresignal.com", "https://api.coresignal.com/v2", "http://127.0.0.1:8010/dbapi"],
)
def test_a_base_url_that_does_not_end_in_cdapi_is_refused(url: str) -> None:
    # Every call to such a URL is a route 404 (spec §1); review #15 tombstoned the mirror on those.
    with pytest.raises(ValidationError, match=r"CORESIGNAL_BASE_URL must end in /cdapi"):
        Settings(coresignal_base_url=url)


def test_a_refused_base_url_never_shows_its_credentials() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(coresignal_base_url="https://proxy-user:pr0xyPass@proxy.example/v2")
    assert "pr0xyPass" not in str(caught.value)
