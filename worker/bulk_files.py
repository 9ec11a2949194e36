"""Incremental decoding of a bulk file (spec §8.3): bytes in, profile dicts out. Pure; no I/O.

    decoder = FileDecoder(skip_records=checkpoint)
    async for chunk in client.download_file(request_id, name):
        for profile in decoder.feed(chunk):
            ...
    for profile in decoder.finish():            # raises CorruptFileError if the file was cut short
        ...
    checkpoint = decoder.records_consumed

- gzip is recognised by its magic bytes (1f 8b), whatever the headers said; anything else is
  read as plain text. Concatenated gzip members are one stream, as `gzip -d` reads them.
- The layout is JSONL (one record per line; blank lines ignored), or a JSON array when the
  content starts with `[` (the spec leaves the layout unconfirmed, §10.2).
- Memory stays flat: `feed` is lazy and decompresses in bounded pieces (256 KiB of text), and
  only the unfinished tail (one partial record) is kept between chunks. A record larger than
  `max_record_bytes` is refused.
- Position: `records_consumed` counts records delivered or skipped, in file order, so a caller
  can checkpoint after handling them and resume with `skip_records=` on a fresh download.
  Skipped JSONL lines are not even parsed. `lines_consumed` is the physical line count (JSONL).
- Any decoding failure (truncated or corrupt gzip, bad JSON, a record that is not an object) is a
  `CorruptFileError`: a transient error, so the caller downloads the file again, a bounded
  number of times.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator
from typing import Any

from worker.errors import CorruptFileError

GZIP_MAGIC = b"\x1f\x8b"
_GZIP_WBITS = 31
_PIECE_BYTES = 1 << 18  # decompressed bytes per step: what bounds memory, whatever the ratio
DEFAULT_MAX_RECORD_BYTES = 16 << 20  # a profile is a few KiB; far past that is a broken file
_WHITESPACE = b" \t\r\n"

type Record = dict[str, Any]


class FileDecoder:
    def __init__(self, *, skip_records: int = 0, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> None:
        self.skip_records = skip_records
        self.max_record_bytes = max_record_bytes
        self.records_consumed = 0
        self.lines_consumed = 0
        self.compressed: bool | None = None  # None until the first two bytes are seen
        self._head = b""  # bytes held back until gzip can be told from plain
        self._inflater: Any = None  # zlib decompressobj of the current gzip member
        self._text = _TextDecoder(self)

    def feed(self, chunk: bytes) -> Iterator[Record]:
        """The records completed by this chunk, lazily: iterate it to the end before the next feed.

        Lazy so that memory is bounded by one decompressed piece, not by what a chunk of a very
        compressible file expands to.
        """
        if self.compressed is None:
            self._head += chunk
            if len(self._head) < len(GZIP_MAGIC):
                return
            chunk, self._head = self._head, b""
            self.compressed = chunk.startswith(GZIP_MAGIC)
            if self.compressed:
                self._inflater = zlib.decompressobj(_GZIP_WBITS)
        if not self.compressed:
            out: list[Record] = []
            self._text.feed(chunk, out)
            yield from out
            return
        yield from self._inflate(chunk)

    def finish(self) -> list[Record]:
        """The last records; raises CorruptFileError if the stream or the last record is incomplete."""
        out: list[Record] = []
        if self.compressed is None and self._head:
            self.compressed = False
            self._text.feed(self._head, out)
            self._head = b""
        if self.compressed is None:
            raise self.error("empty file")  # a data request's file has at least one record
        if self.compressed and not self._inflater.eof:
            raise self.error("truncated gzip stream (no end of stream)")
        self._text.finish(out)
        return out

    def error(self, reason: str) -> CorruptFileError:
        return CorruptFileError(f"bulk file corrupt after {self.records_consumed} records: {reason}")

    def _inflate(self, data: bytes) -> Iterator[Record]:
        while True:
            if self._inflater.eof:
                if not data:
                    return
                data = self._next_member(data)
            try:
                piece = self._inflater.decompress(data, _PIECE_BYTES)
            except zlib.error as exc:
                raise self.error(f"corrupt gzip data: {exc}") from None
            data = self._inflater.unused_data if self._inflater.eof else self._inflater.unconsumed_tail
            out: list[Record] = []
            self._text.feed(piece, out)
            yield from out
            # A full piece may leave output inside zlib even when all input was taken: go again.
            if not data and len(piece) < _PIECE_BYTES:
                return

    def _next_member(self, data: bytes) -> bytes:
        """After one gzip member ends: another member, or trailing garbage."""
        # A lone 1f may be the first byte of a member whose second byte is in the next chunk; if
        # it is not, zlib's header check says so.
        if not data.startswith(GZIP_MAGIC[: len(data)]):
            raise self.error("trailing bytes after the gzip stream")
        self._inflater = zlib.decompressobj(_GZIP_WBITS)
        return data


class _TextDecoder:
    """Decompressed bytes → records, as JSONL or as a JSON array (chosen at the first byte)."""

    def __init__(self, owner: FileDecoder) -> None:
        self._owner = owner
        self._buffer = bytearray()
        self._array: bool | None = None
        self._array_state = "start"  # start → item → separator → ... → done
        self._retry_at = 0  # array: buffer length worth trying to parse again

    def feed(self, data: bytes, out: list[Record]) -> None:
        self._buffer += data
        if self._array is None:
            stripped = self._buffer.lstrip(_WHITESPACE + b"\xef\xbb\xbf")
            if not stripped:
                return
            self._array = stripped.startswith(b"[")
        if self._array:
            self._parse_array(out, final=False)
        else:
            self._parse_lines(out)

    def finish(self, out: list[Record]) -> None:
        if self._array:
            self._parse_array(out, final=True)
            if self._array_state != "done":
                raise self._owner.error("truncated JSON array (no closing bracket)")
            if self._buffer.strip():
                raise self._owner.error("bytes after the JSON array")
            return
        if self._buffer.strip():
            self._line(bytes(self._buffer), out)
        self._buffer.clear()

    # -- JSONL -------------------------------------------------------------------------------

    def _parse_lines(self, out: list[Record]) -> None:
        start = 0
        while (end := self._buffer.find(b"\n", start)) >= 0:
            self._line(bytes(self._buffer[start:end]), out)
            start = end + 1
        del self._buffer[:start]
        if len(self._buffer) > self._owner.max_record_bytes:
            raise self._owner.error(f"a line longer than {self._owner.max_record_bytes} bytes")

    def _line(self, line: bytes, out: list[Record]) -> None:
        owner = self._owner
        owner.lines_consumed += 1
        if not line.strip():
            return
        if owner.records_consumed < owner.skip_records:
            owner.records_consumed += 1
            return
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise owner.error(f"line {owner.lines_consumed}: not valid JSON ({exc})") from None
        self._emit(record, out)

    def _emit(self, record: object, out: list[Record]) -> None:
        owner = self._owner
        if not isinstance(record, dict):
            raise owner.error(f"record {owner.records_consumed + 1} is not a JSON object")
        if owner.records_consumed >= owner.skip_records:
            out.append(record)
        owner.records_consumed += 1

    # -- JSON array --------------------------------------------------------------------------

    def _parse_array(self, out: list[Record], *, final: bool) -> None:
        if not final and len(self._buffer) < self._retry_at:
            return  # an unfinished item: wait until the buffer has doubled (linear total work)
        text = self._buffer.decode("utf-8", "replace") if final else self._decode_prefix()
        position = self._array_walk(text, out, final=final)
        consumed = len(text[:position].encode("utf-8"))
        del self._buffer[:consumed]
        self._retry_at = 2 * len(self._buffer)
        if len(self._buffer) > self._owner.max_record_bytes:
            raise self._owner.error(f"a record longer than {self._owner.max_record_bytes} bytes")

    def _decode_prefix(self) -> str:
        """The buffer as text, minus a UTF-8 sequence cut at its end."""
        for cut in range(4):
            try:
                return self._buffer[: len(self._buffer) - cut].decode("utf-8")
            except UnicodeDecodeError:
                continue
        raise self._owner.error("not valid UTF-8")

    def _array_walk(self, text: str, out: list[Record], *, final: bool) -> int:
        """Parses what it can; returns how many characters were consumed."""
        decoder = json.JSONDecoder()
        position = 0
        while True:
            position = _skip_whitespace(text, position)
            if position >= len(text):
                return position
            if self._array_state == "start":
                position = self._expect(text, position, "[", "item_or_end")
            elif self._array_state in ("separator", "item_or_end") and text[position] == "]":
                self._array_state, position = "done", position + 1
            elif self._array_state == "separator":
                position = self._expect(text, position, ",", "item")
            elif self._array_state == "done":
                return position
            else:
                try:
                    record, end = decoder.raw_decode(text, position)
                except ValueError as exc:
                    if final or len(text) - position > self._owner.max_record_bytes:
                        raise self._owner.error(f"record {self._owner.records_consumed + 1}: {exc}") from None
                    return position
                self._emit(record, out)
                self._array_state, position = "separator", end

    def _expect(self, text: str, position: int, char: str, next_state: str) -> int:
        if text[position] != char:
            raise self._owner.error(f"expected {char!r} in the JSON array, found {text[position]!r}")
        self._array_state = next_state
        return position + 1


def _skip_whitespace(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\r\n\ufeff":
        position += 1
    return position
