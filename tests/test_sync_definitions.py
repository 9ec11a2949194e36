"""Sync definitions: validated whole before anything is saved; managed by name; CLI and store agree."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from config import Settings
from devstack.processes import free_port
from jobs.syncs import (
    SyncNotFoundError,
    SyncRequest,
    create_sync,
    delete_sync,
    get_sync,
    list_syncs,
    run_now,
    set_sync_state,
)
from tests.cli_support import run_cli_in_process
from tests.conftest import with_overrides
from worker.errors import InputError
from worker.runtime import Services
from worker.store.syncs import SyncExistsError
from worker.sync_model import SyncSource, SyncState, parse_duration_s


def ids_request(name: str, text: str, **extra: object) -> SyncRequest:
    lines = list(enumerate(text.splitlines(), start=1))
    return SyncRequest(name=name, source=SyncSource.IDS, lines=lines, **extra)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("15m", 900), ("6h", 21_600), ("7d", 604_800), ("1.5h", 5400)]
)
def test_durations_accept_s_m_h_d(text: str, seconds: float) -> None:
    assert parse_duration_s(text, "--every") == seconds


@pytest.mark.parametrize("text", ["7w", "10", "abc", "0s", "-5m", "3 years"])
def test_other_durations_are_refused_with_the_flag_named(text: str) -> None:
    with pytest.raises(InputError, match="--max-age"):
        parse_duration_s(text, "--max-age")


async def test_a_sync_is_saved_with_its_members_and_managed_by_name(services: Services) -> None:
    sync = await create_sync(
        services, ids_request("team", "11\n22\n# note\n22\n33\n", max_age="20s", every="2s")
    )
    assert (sync.max_age_s, sync.every_s, sync.members) == (20, 2, 3)
    stored = await get_sync(services, "team")
    assert stored.source is SyncSource.IDS and stored.state is SyncState.ACTIVE
    assert sorted(await services.store.syncs.member_ids("team")) == [11, 22, 33]
    assert [s.name for s in await list_syncs(services)] == ["team"]
    assert (await set_sync_state(services, "team", SyncState.PAUSED)).state is SyncState.PAUSED
    assert (await set_sync_state(services, "team", SyncState.ACTIVE)).state is SyncState.ACTIVE
    before = (await get_sync(services, "team")).next_due_at
    assert (await run_now(services, "team")).next_due_at >= before
    with pytest.raises(SyncExistsError, match="exists already"):
        await create_sync(services, ids_request("team", "44\n"))
    assert sorted(await services.store.syncs.member_ids("team")) == [11, 22, 33]
    await delete_sync(services, "team")
    with pytest.raises(SyncNotFoundError):
        await get_sync(services, "team")
    assert await services.store.syncs.count_members("team") == 0


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (ids_request("a", "1\n", max_age="7w"), "unknown duration unit 'w'"),
        (ids_request("a", "1\n", max_age="10s", every="20s"), "shorter than --every"),
        (ids_request("a", ""), "list is empty"),
        (ids_request("a", "# only a comment\n\n"), "list is empty"),
        (ids_request("a", "1\nabc\n"), "line 2"),
        (ids_request("Bad Name", "1\n"), "sync name"),
        (SyncRequest(name="q", source=SyncSource.QUERY, query_text='{"query": {'), "not valid JSON"),
        (SyncRequest(name="q", source=SyncSource.QUERY, query_text='{"size": 3}'), "query"),
        (SyncRequest(name="q", source=SyncSource.QUERY, query_text='{"query": {}}'), "non-empty"),
        (SyncRequest(name="q", source=SyncSource.QUERY, query_text=""), "empty"),
    ],
)
async def test_bad_definitions_are_refused_and_nothing_is_saved(
    services: Services, request_: SyncRequest, message: str
) -> None:
    with pytest.raises(InputError, match=message):
        await create_sync(services, request_)
    assert await list_syncs(services) == []
    assert await services.store.syncs.count_members(request_.name) == 0


async def test_a_query_sync_keeps_its_query(services: Services) -> None:
    body = {"query": {"term": {"location_country": "Germany"}}}
    sync = await create_sync(
        services, SyncRequest(name="de", source=SyncSource.QUERY, query_text=json.dumps(body))
    )
    assert json.loads((await get_sync(services, "de")).query_json or "") == body
    assert sync.members == 0  # members are its matches, found by the first tick


@pytest.mark.slow
def test_the_cli_refuses_a_bad_definition_with_exit_2_and_saves_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    ids = tmp_path / "ids.txt"
    ids.write_text("")
    refused = run_cli_in_process(settings, "syncs", "create", "team", "--ids", str(ids))
    assert refused.returncode == 2 and "list is empty" in refused.stderr
    ids.write_text("101\n102\n")
    refused = run_cli_in_process(settings, "syncs", "create", "team", "--ids", str(ids), "--max-age", "5x")
    assert refused.returncode == 2 and "unknown duration unit 'x'" in refused.stderr
    made = run_cli_in_process(
        settings, "syncs", "create", "team", "--ids", str(ids), "--max-age", "20s", "--every", "2s", "--json"
    )
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["members"] == 2
    shown = json.loads(run_cli_in_process(settings, "syncs", "list", "--json").stdout)
    assert [s["name"] for s in shown] == ["team"]  # the refused ones left nothing behind


@pytest.mark.slow
def test_a_bad_definition_is_refused_before_any_store_is_reached(settings: Settings, tmp_path: Path) -> None:
    ids = tmp_path / "ids.txt"
    ids.write_text("101\n")
    nowhere = with_overrides(settings, mongodb_url=f"mongodb://127.0.0.1:{free_port()}")
    args = ["syncs", "create", "team", "--ids", str(ids), "--max-age", "1h", "--every", "6h"]
    refused = run_cli_in_process(nowhere, *args)
    assert refused.returncode == 2, refused.stderr
    assert "shorter than --every" in refused.stderr and "MongoDB" not in refused.stderr
