"""The bulk file decoder (worker.bulk_files): real gzip files fed in odd chunk sizes."""

from __future__ import annotations

import gzip
import json
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest

from worker.bulk_files import FileDecoder
from worker.errors import CorruptFileError, TransientError

CHUNK_SIZES = (1, 7, 997, 65_536)


def records(count: int) -> list[dict[str, Any]]:
    return [
        {
            "id": 10_000 + 7 * n,
            "full_name": f"Zoë Łukasz 東京 {n}",
            "experience": [{"company_name": "Acme", "title": "Engineer", "order": k} for k in range(n % 4)],
            "headline": "x" * (n % 300),
        }
        for n in range(count)
    ]


def jsonl(items: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items).encode()


def chunks(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def decode(data: bytes, size: int, **options: int) -> tuple[list[dict[str, Any]], FileDecoder]:
    decoder = FileDecoder(**options)
    out: list[dict[str, Any]] = []
    for chunk in chunks(data, size):
        out.extend(decoder.feed(chunk))
    out.extend(decoder.finish())
    return out, decoder


@pytest.mark.parametrize("size", CHUNK_SIZES)
def test_gzip_jsonl_of_thousands_of_lines(size: int) -> None:
    expected = records(3_000)
    got, decoder = decode(gzip.compress(jsonl(expected)), size)
    assert got == expected
    assert (decoder.compressed, decoder.records_consumed, decoder.lines_consumed) == (True, 3_000, 3_000)


@pytest.mark.parametrize("size", (1, 7, 4_096))
def test_plain_jsonl_is_detected_by_the_missing_magic(size: int) -> None:
    expected = records(500)
    body = b"\n" + jsonl(expected).replace(b"\n", b"\r\n", 3) + b"\n\n"  # blank and CRLF lines are fine
    got, decoder = decode(body, size)
    assert (got, decoder.compressed) == (expected, False)


@pytest.mark.parametrize("size", CHUNK_SIZES)
def test_json_array_compact_on_one_line(size: int) -> None:
    expected = records(2_000)
    body = json.dumps(expected, ensure_ascii=False, separators=(",", ":")).encode()
    got, _ = decode(gzip.compress(body), size)
    assert got == expected


@pytest.mark.parametrize("size", (3, 1_000))
def test_json_array_pretty_printed_and_empty(size: int) -> None:
    expected = records(300)
    got, _ = decode(gzip.compress(json.dumps(expected, indent=2, ensure_ascii=False).encode()), size)
    assert got == expected
    assert decode(b"  [ ]\n", size)[0] == []


def test_concatenated_gzip_members_are_one_file() -> None:
    expected = records(1_200)
    body = gzip.compress(jsonl(expected[:700])) + gzip.compress(jsonl(expected[700:]))
    for size in CHUNK_SIZES:
        assert decode(body, size)[0] == expected


@pytest.mark.parametrize("size", (7, 65_536))
def test_truncated_gzip_gives_its_records_then_a_transient_error(size: int) -> None:
    body = gzip.compress(jsonl(records(3_000)))
    decoder = FileDecoder()
    got: list[dict[str, Any]] = []
    with pytest.raises(CorruptFileError, match="truncated gzip stream") as caught:
        for chunk in chunks(body[: len(body) // 2], size):
            got.extend(decoder.feed(chunk))
        got.extend(decoder.finish())
    assert isinstance(caught.value, TransientError)
    assert 0 < len(got) < 3_000
    assert got == records(len(got))
    assert decoder.records_consumed == len(got)


def test_gzip_cut_inside_the_trailer_is_truncated() -> None:
    body = gzip.compress(jsonl(records(10)))
    with pytest.raises(CorruptFileError):
        decode(body[:-3], 4096)


def test_corrupt_gzip_is_a_corrupt_file_error() -> None:
    body = bytearray(gzip.compress(jsonl(records(2_000))))
    middle = len(body) // 2
    body[middle : middle + 16] = bytes(b ^ 0xFF for b in body[middle : middle + 16])
    with pytest.raises(CorruptFileError):
        decode(bytes(body), 997)


def test_trailing_garbage_and_empty_file_are_errors() -> None:
    with pytest.raises(CorruptFileError, match="trailing bytes"):
        decode(gzip.compress(jsonl(records(3))) + b"garbage", 64)
    with pytest.raises(CorruptFileError, match="empty file"):
        decode(b"", 64)


def test_bad_json_line_names_its_line() -> None:
    body = jsonl(records(5)) + b'{"id": 1, "full_na\n' + jsonl(records(2))
    with pytest.raises(CorruptFileError, match="line 6"):
        decode(gzip.compress(body), 13)
    with pytest.raises(CorruptFileError, match="not a JSON object"):
        decode(b'{"id": 1}\n[1, 2]\n', 5)


def test_truncated_json_array_is_an_error() -> None:
    body = json.dumps(records(50)).encode()
    with pytest.raises(CorruptFileError, match="truncated JSON array"):
        decode(body[:-1], 100)
    with pytest.raises(CorruptFileError):
        decode(body[: len(body) // 2], 100)


@pytest.mark.parametrize("array", (False, True))
def test_resume_at_a_checkpoint_skips_records_already_handled(array: bool) -> None:
    expected = records(1_000)
    plain = json.dumps(expected).encode() if array else jsonl(expected)
    body = gzip.compress(plain)
    first = FileDecoder()
    handled: list[dict[str, Any]] = []
    for chunk in chunks(body, 4_000):
        handled.extend(first.feed(chunk))
        if len(handled) >= 400:
            break  # the worker "dies" here, after checkpointing
    checkpoint = first.records_consumed
    assert checkpoint == len(handled)
    rest, second = decode(body, 997, skip_records=checkpoint)
    assert handled + rest == expected
    assert second.records_consumed == 1_000


def test_a_record_over_the_size_limit_is_refused() -> None:
    with pytest.raises(CorruptFileError, match="longer than 1000 bytes"):
        decode(b'{"id": 1, "x": "' + b"y" * 5_000, 512, max_record_bytes=1_000)


@pytest.mark.slow
def test_memory_stays_flat_whatever_the_file_size() -> None:
    body = gzip.compress(jsonl(records(30_000)))
    plain_size = len(gzip.decompress(body))
    decoder = FileDecoder()
    seen = 0
    tracemalloc.start()
    try:
        for chunk in chunks(body, 1 << 20):  # a big chunk of a very compressible file
            for _record in decoder.feed(chunk):  # handled and dropped, as a sink would
                seen += 1
        seen += len(decoder.finish())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen == 30_000
    # ~10 MiB of text from a 250 KiB download; the decoder holds one 256 KiB piece at a time.
    assert plain_size > 8 * (1 << 20)
    assert peak < plain_size / 4
