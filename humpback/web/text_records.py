"""Plain-text corpora (JSON Lines and Parquet) -> document rows and reject rows, record by record.

The text counterpart of humpback.web.warc: one row per input record, either a document
(kind='document': doc_id, url, text, source_file, line, id_source) or a reject (kind='reject': source, stage,
reason, detail; the shape of warc.reject_row). A bad record never stops a file: the records around it are kept.

JSON Lines (.jsonl, .ndjson, .json, each optionally .gz, .bz2, .xz, .zst/.zstd): one JSON object per line.
Compression is recognised by its magic bytes, not the name, and decompressed as a stream (gzip, bzip2 and xz by
the standard library, concatenated members included; zstd by pyarrow's codec). Damage ends the readable data:
the complete lines before it are kept and one reject names it: `truncated_file` (the data stops inside the
compressed stream), `decompression_error` (corrupt data, or bytes after the last member that are not
compressed data). Blank lines are not records and yield nothing. Row rejects:
  invalid_utf8, invalid_json, not_an_object, missing_text (no such field, or null), text_not_a_string,
  empty_text (only whitespace), invalid_id (an id that is not a string or an integer), url_not_a_string,
  too_large (a line, or a Parquet text, over max_record_bytes; the line is skipped without being held).
File rejects: empty_file (no bytes, nothing after decompression, or no records at all), not_text (binary data
where JSON lines were expected), plus the damage reasons above.

Parquet (.parquet, .pq): streamed row group by row group in batches, reading only the text, id and url columns.
File rejects: invalid_parquet (no readable footer: not Parquet, or cut short), missing_text_column; a row group
that fails part-way is one `parquet_read_error` reject for its unread rows, and the next row group is read.
Row rejects are those of JSON Lines that apply (a null text is missing_text; a binary text is decoded as UTF-8).

Field names are configurable (text_field, id_field, url_field); a name with dots (`meta.url`) that is not a
top-level key walks into nested objects (structs in Parquet). `line` is the record's 1-based line (JSON Lines)
or row (Parquet) number, and row rejects name `<source>:<line>`.

Ids: a record's own id (id_field; a non-empty string, or an integer written in decimal) is its doc_id
(id_source 'field'). A record without one gets a content id (id_source 'content'), `content_doc_id(url, text)`:
SHA-256 of the URL ("" when there is none), NUL, the text, as 64 hex digits. It depends on neither the file's
name nor the record's position, so it is the same on every rerun and after files are moved, merged or split;
the same text at the same URL is the same document.
"""
from __future__ import annotations

import bz2
import json
import lzma
import os
import zlib
from typing import Any, BinaryIO, Callable, Iterator

from humpback.ids import joined_hash
from humpback.web.warc import STAGE, looks_binary, reject_row

FORMATS = ("warc", "jsonl", "parquet")
DEFAULT_TEXT_FIELD, DEFAULT_ID_FIELD, DEFAULT_URL_FIELD = "text", "id", "url"
DEFAULT_MAX_RECORD_BYTES = 16_000_000
DEFAULT_BATCH_ROWS = 1024
READ_CHUNK = 1 << 20
SNIPPET_CHARS = 120
DETAIL_CHARS = 500

COMPRESSION_SUFFIXES = (".gz", ".gzip", ".bz2", ".xz", ".zst", ".zstd")
FORMAT_SUFFIXES = {".warc": "warc", ".jsonl": "jsonl", ".ndjson": "jsonl", ".jsonlines": "jsonl",
                   ".json": "jsonl", ".parquet": "parquet", ".pq": "parquet"}
# Formats that may carry an outer compression suffix (Parquet compresses inside the file; WARC only as .gz).
COMPRESSIBLE = {"warc": (".gz",), "jsonl": COMPRESSION_SUFFIXES, "parquet": ()}
MAGIC = ((b"\x1f\x8b", "gzip"), (b"BZh", "bzip2"), (b"\xfd7zXZ\x00", "xz"), (b"\x28\xb5\x2f\xfd", "zstd"))

_MISSING = object()


class UnknownFormat(ValueError):
    """A file name whose extension names no input format this pipeline reads."""


class _Damage(Exception):
    """Unreadable data. `complete`: everything before it decompressed whole (bytes after the last member)."""

    def __init__(self, reason: str, detail: str, complete: bool = False):
        super().__init__(detail)
        self.reason, self.detail, self.complete = reason, detail, complete


def detect_format(path: str | os.PathLike) -> str:
    """'warc', 'jsonl' or 'parquet', from the file name's extension (a local path or a URI; case ignored).

    .warc[.gz]; .jsonl / .ndjson / .jsonlines / .json, optionally compressed (.gz, .gzip, .bz2, .xz, .zst,
    .zstd); .parquet / .pq. Raises UnknownFormat for anything else.
    """
    name = os.fspath(path).split("?", 1)[0].split("#", 1)[0].rstrip("/").rsplit("/", 1)[-1].lower()
    compression = next((s for s in COMPRESSION_SUFFIXES if name.endswith(s)), "")
    stem = name[:len(name) - len(compression)]
    fmt = next((f for suffix, f in FORMAT_SUFFIXES.items() if stem.endswith(suffix)), None)
    if fmt is None or (compression and compression not in COMPRESSIBLE[fmt]):
        raise UnknownFormat(
            f"cannot tell the format of {os.fspath(path)!r} from its name: expected .warc or .warc.gz (WARC), "
            ".jsonl, .ndjson or .json, optionally .gz, .bz2, .xz, .zst or .zstd (JSON Lines), or .parquet (Parquet)")
    return fmt


def content_doc_id(url: str | None, text: str) -> str:
    """The id of a document that has none: SHA-256 hex of the URL ('' when None), NUL, the text."""
    return joined_hash(url or "", text)


def iter_text_records(path_or_stream: str | os.PathLike | BinaryIO, source: str | None = None,
                      fmt: str | None = None, *, text_field: str = DEFAULT_TEXT_FIELD,
                      id_field: str = DEFAULT_ID_FIELD, url_field: str = DEFAULT_URL_FIELD,
                      max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
                      batch_rows: int = DEFAULT_BATCH_ROWS) -> Iterator[dict]:
    """Yield one row per record of a JSON Lines or Parquet file: a document row or a reject row (module docstring).

    `path_or_stream` is a local path, a file: URI or a cluster URI (opened by humpback.files.open_input, fsspec for
    remote schemes), or a binary stream (seekable for Parquet). `source` names the file in the rows (default: the
    path, or the stream's name). `fmt` ('jsonl' or 'parquet') defaults to detect_format(source).
    """
    if isinstance(path_or_stream, (str, os.PathLike)):
        from humpback.files import open_input

        source = source or os.fspath(path_or_stream)
        fmt = fmt or detect_format(source)
        with open_input(os.fspath(path_or_stream)) as stream:
            yield from iter_text_records(stream, source, fmt, text_field=text_field, id_field=id_field,
                                         url_field=url_field, max_record_bytes=max_record_bytes, batch_rows=batch_rows)
        return
    source = source or str(getattr(path_or_stream, "name", "<stream>"))
    fmt = fmt or detect_format(source)
    fields = _Fields(text_field, id_field, url_field, max_record_bytes)
    if fmt == "jsonl":
        yield from _iter_jsonl(path_or_stream, source, fields)
    elif fmt == "parquet":
        yield from _iter_parquet(path_or_stream, source, fields, batch_rows)
    elif fmt == "warc":
        raise ValueError(f"{source} is a WARC file: read it with humpback.web.warc.iter_warc")
    else:
        raise ValueError(f"unknown format {fmt!r}: expected one of {', '.join(FORMATS)}")


class _Fields:
    """The field names and the per-record checks shared by both formats."""

    def __init__(self, text_field: str, id_field: str, url_field: str, max_record_bytes: int):
        self.text, self.id, self.url = text_field, id_field, url_field
        self.max_record_bytes = max_record_bytes

    def row(self, values: Callable[[str], Any], source: str, line: int) -> dict:
        """The document or reject row for one record; `values(field)` gives a field's value or _MISSING."""
        where = f"{source}:{line}"
        text = values(self.text)
        if text is _MISSING or text is None:
            return _reject(where, "missing_text", f"no {self.text!r} field (or null) at line {line}")
        if isinstance(text, (bytes, bytearray)):
            try:
                text = bytes(text).decode("utf-8")
            except UnicodeDecodeError as err:
                return _reject(where, "invalid_utf8", f"{self.text!r} at line {line} is not UTF-8: {err}")
        if not isinstance(text, str):
            return _reject(where, "text_not_a_string",
                           f"{self.text!r} at line {line} is {_json_type(text)}: {_snippet(text)}")
        if not text.strip():
            return _reject(where, "empty_text", f"{self.text!r} at line {line} is empty or only whitespace")
        if len(text) > self.max_record_bytes // 4 and len(text.encode("utf-8")) > self.max_record_bytes:
            return _reject(where, "too_large", f"{self.text!r} at line {line} is over {self.max_record_bytes} bytes")
        url = values(self.url)
        if url is _MISSING or url == "":
            url = None
        if url is not None and not isinstance(url, str):
            return _reject(where, "url_not_a_string",
                           f"{self.url!r} at line {line} is {_json_type(url)}: {_snippet(url)}")
        doc_id = values(self.id)
        if doc_id is _MISSING or doc_id is None or doc_id == "":
            doc_id, id_source = content_doc_id(url, text), "content"
        elif isinstance(doc_id, str) or (isinstance(doc_id, int) and not isinstance(doc_id, bool)):
            doc_id, id_source = str(doc_id), "field"
        else:
            return _reject(where, "invalid_id",
                           f"{self.id!r} at line {line} is {_json_type(doc_id)}, not a string or an integer: "
                           f"{_snippet(doc_id)}")
        return {"kind": "document", "doc_id": doc_id, "url": url, "text": text, "source_file": source,
                "line": line, "id_source": id_source}


# ----- JSON Lines -----

def _iter_jsonl(stream: BinaryIO, source: str, fields: _Fields) -> Iterator[dict]:
    """The rows of a JSON Lines stream, compressed or not (see the module docstring)."""
    n_rows = 0
    try:
        for line_no, line in _lines(stream, source, fields.max_record_bytes):
            if isinstance(line, dict):  # a reject from the line splitter (too_large, not_text)
                n_rows += 1
                yield line
                continue
            row = _jsonl_row(line, line_no, source, fields)
            if row is not None:
                n_rows += 1
                yield row
    except _Damage as damage:
        n_rows += 1
        yield _reject(source, damage.reason, damage.detail)
    if n_rows == 0:
        yield _reject(source, "empty_file", "no records: the file holds no data, or only blank lines")


def _jsonl_row(line: bytes, line_no: int, source: str, fields: _Fields) -> dict | None:
    if not line.strip():
        return None
    where = f"{source}:{line_no}"
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as err:
        return _reject(where, "invalid_utf8", f"line {line_no} is not UTF-8: {err}")
    if line_no == 1:
        text = text.removeprefix("\ufeff")
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as err:
        return _reject(where, "invalid_json", f"line {line_no}: {err}: {_snippet(text)}")
    if not isinstance(value, dict):
        return _reject(where, "not_an_object", f"line {line_no} is {_json_type(value)}: {_snippet(text)}")
    return fields.row(lambda name: _lookup(value, name), source, line_no)


def _lines(stream: BinaryIO, source: str, max_line_bytes: int) -> Iterator[tuple[int, bytes | dict]]:
    """(line number, line bytes without the newline) for each line; a too-long line is (n, reject row).

    Raises _Damage after the last complete line when the data is damaged; a partial last line before damage is
    named in its detail, never parsed.
    """
    buffer = bytearray()
    line_no = 0
    skipping = False  # inside a line that is over the limit: its bytes are dropped until its newline
    checked = False
    chunks = _decompressed(stream)
    try:
        for chunk in chunks:
            if not checked and chunk:
                checked = True
                if looks_binary(chunk[:8192]):
                    yield 1, _reject(source, "not_text", "binary data, not JSON lines (a mislabelled file?)")
                    return
            start = 0
            while True:
                newline = chunk.find(b"\n", start)
                if newline == -1:
                    if not skipping:
                        buffer += chunk[start:]
                        if len(buffer) > max_line_bytes:
                            skipping = True
                            buffer.clear()
                    break
                line_no += 1
                if skipping:
                    yield line_no, _too_large(source, line_no, max_line_bytes)
                    skipping = False
                elif not buffer and newline - start <= max_line_bytes:  # the common case: no copy
                    yield line_no, chunk[start:newline]
                else:
                    buffer += chunk[start:newline]
                    if len(buffer) > max_line_bytes:
                        yield line_no, _too_large(source, line_no, max_line_bytes)
                    else:
                        yield line_no, bytes(buffer)
                buffer.clear()
                start = newline + 1
    except _Damage as damage:
        if damage.complete and (buffer or skipping):  # the last line is whole: it just has no newline
            line_no += 1
            yield line_no, _too_large(source, line_no, max_line_bytes) if skipping else bytes(buffer)
        elif buffer or skipping:
            damage.detail += f"; line {line_no + 1} is cut off ({len(buffer)} bytes of it read) and not used"
        damage.detail += f"; the {line_no} complete lines before it were read"
        raise
    line_no += 1
    if skipping:
        yield line_no, _too_large(source, line_no, max_line_bytes)
    elif buffer:
        yield line_no, bytes(buffer)


def _too_large(source: str, line_no: int, limit: int) -> dict:
    return _reject(f"{source}:{line_no}", "too_large", f"line {line_no} is over {limit} bytes")


def _decompressed(stream: BinaryIO) -> Iterator[bytes]:
    """The stream's bytes, decompressed by the format its magic bytes name. Raises _Damage on damage."""
    head = stream.read(READ_CHUNK)
    compression = next((name for magic, name in MAGIC if head.startswith(magic)), None)
    if compression is None:
        while head:
            yield head
            head = stream.read(READ_CHUNK)
    elif compression == "zstd":
        yield from _zstd_chunks(stream, head)
    else:
        yield from _member_chunks(stream, head, compression)


def _new_decompressor(compression: str):
    if compression == "gzip":
        return zlib.decompressobj(zlib.MAX_WBITS | 16)
    if compression == "bzip2":
        return bz2.BZ2Decompressor()
    return lzma.LZMADecompressor(lzma.FORMAT_XZ)


def _member_chunks(stream: BinaryIO, data: bytes, compression: str) -> Iterator[bytes]:
    """gzip, bzip2 or xz data, any number of concatenated members (zero padding between them allowed).

    Output comes in pieces of at most READ_CHUNK bytes, so a small member that inflates hugely is never held whole.
    """
    magic = next(m for m, name in MAGIC if name == compression)
    decompressor = _new_decompressor(compression)
    n_read = len(data)  # compressed bytes read so far, for the damage detail
    while True:
        # zlib hands back input it had no room to use as unconsumed_tail; bz2 and lzma keep it and say
        # needs_input = False until their pending output is drained.
        if not data and (compression == "gzip" or decompressor.needs_input):
            data = stream.read(READ_CHUNK)
            n_read += len(data)
            if not data:
                if compression == "gzip":
                    tail = decompressor.flush()
                    if tail:
                        yield tail
                raise _Damage("truncated_file", f"the {compression} data ends inside a compressed member "
                                                f"(after {n_read} compressed bytes)")
        try:
            out = decompressor.decompress(data, READ_CHUNK)
        except (zlib.error, OSError, EOFError, lzma.LZMAError, ValueError) as err:
            raise _Damage("decompression_error", f"corrupt {compression} data within the first {n_read} "
                                                 f"compressed bytes: {err}") from None
        if out:
            yield out
        if not decompressor.eof:
            data = decompressor.unconsumed_tail if compression == "gzip" else b""
            continue
        rest = decompressor.unused_data.lstrip(b"\x00")
        while len(rest) < len(magic):
            more = stream.read(READ_CHUNK)
            n_read += len(more)
            if not more:
                break
            rest = (rest + more).lstrip(b"\x00")
        if not rest:
            return
        if not rest.startswith(magic):
            raise _Damage("decompression_error", f"bytes after a complete {compression} member (within the first "
                                                 f"{n_read} compressed bytes) are not {compression} data",
                          complete=True)
        decompressor, data = _new_decompressor(compression), rest


def _zstd_chunks(stream: BinaryIO, head: bytes) -> Iterator[bytes]:
    """zstd data (any number of frames) through pyarrow's codec: no extra dependency."""
    import pyarrow as pa

    if not pa.Codec.is_available("zstd"):
        raise _Damage("decompression_error", "this pyarrow build has no zstd codec")
    compressed = pa.CompressedInputStream(pa.PythonFile(_Prefixed(head, stream), mode="r"), "zstd")
    produced = 0
    while True:
        try:
            out = compressed.read(READ_CHUNK)
        except OSError as err:
            reason = "truncated_file" if "truncated" in str(err).lower() else "decompression_error"
            raise _Damage(reason, f"zstd: {err} (after {produced} decompressed bytes)") from None
        if not out:
            return
        produced += len(out)
        yield out


class _Prefixed:
    """A read-only binary file: `head` (already read from the stream) and then the rest of the stream."""

    def __init__(self, head: bytes, stream: BinaryIO):
        self.head, self.stream, self.closed = head, stream, False

    def read(self, size: int = -1) -> bytes:
        if self.head:
            if size is None or size < 0:
                data, self.head = self.head + self.stream.read(), b""
                return data
            data, self.head = self.head[:size], self.head[size:]
            return data
        return self.stream.read(size)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True


# ----- Parquet -----

def _iter_parquet(stream: BinaryIO, source: str, fields: _Fields, batch_rows: int = DEFAULT_BATCH_ROWS
                 ) -> Iterator[dict]:
    """The rows of a Parquet file, row group by row group, in batches of at most `batch_rows` rows."""
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(stream)
    except Exception as err:  # pyarrow raises ArrowInvalid, OSError, ... for what is not (whole) Parquet
        yield _reject(source, "invalid_parquet", f"not a readable Parquet file: {err}")
        return
    names = parquet.schema_arrow.names
    paths = {field: _column_path(name, names) for field, name in
             (("text", fields.text), ("id", fields.id), ("url", fields.url))}
    if paths["text"] is None:
        yield _reject(source, "missing_text_column",
                      f"no column {fields.text!r} (columns: {', '.join(names)})"[:DETAIL_CHARS])
        return
    columns = sorted({path[0] for path in paths.values() if path is not None})
    by_name = {getattr(fields, field): path for field, path in paths.items()}
    first_row = 1
    for group in range(parquet.num_row_groups):
        n_group = parquet.metadata.row_group(group).num_rows
        done = 0
        try:
            for batch in parquet.iter_batches(batch_size=batch_rows, row_groups=[group], columns=columns):
                values = {name: batch.column(name).to_pylist() for name in columns}
                for i in range(batch.num_rows):
                    yield fields.row(lambda name, i=i, values=values: _column_value(values, by_name.get(name), i), source,
                                     first_row + done + i)
                done += batch.num_rows
        except Exception as err:  # noqa: BLE001 - any failure to read the group is this group's reject
            yield _reject(f"{source}:{first_row + done}", "parquet_read_error",
                          f"row group {group}: rows {first_row + done}..{first_row + n_group - 1} unreadable: {err}")
        first_row += n_group
    if first_row == 1:
        yield _reject(source, "empty_file", "no rows")


def _column_path(name: str, columns: list[str]) -> tuple[str, ...] | None:
    if name in columns:
        return (name,)
    parts = tuple(name.split("."))
    return parts if len(parts) > 1 and parts[0] in columns else None


def _column_value(values: dict[str, list], path: tuple[str, ...] | None, i: int) -> Any:
    if path is None:
        return _MISSING
    value = values[path[0]][i]
    for part in path[1:]:
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


# ----- shared -----

def _lookup(obj: dict, name: str) -> Any:
    """obj[name], else the dotted path through nested objects, else _MISSING."""
    if name in obj:
        return obj[name]
    if "." not in name:
        return _MISSING
    value: Any = obj
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, (list, tuple)):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    if value is None:
        return "null"
    return f"a {type(value).__name__}"


def _snippet(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= SNIPPET_CHARS else text[:SNIPPET_CHARS] + "..."


def _reject(source: str, reason: str, detail: str) -> dict:
    return reject_row(source, reason, detail[:DETAIL_CHARS])


__all__ = ["FORMATS", "STAGE", "UnknownFormat", "content_doc_id", "detect_format", "iter_text_records"]
