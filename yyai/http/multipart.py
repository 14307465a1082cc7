"""A multipart form in its plain shape, read in one pass: what Django's MultiPartParser makes of it, faster.

:func:`parse` returns ``(data, files)`` exactly as ``MultiPartParser(...,
[MemoryFileUploadHandler()]).parse()`` would (a QueryDict of the fields, a
MultiValueDict of InMemoryUploadedFile), or None when the body is not in the
shape read here; the caller then runs Django's parser, which also words every
refusal. Django streams the body through a generic boundary search in Python
(14% of a worker's GIL time on JPEG uploads: bench/NOTES.md, "Session 8");
the body is already whole in memory here, so the parts are cut with
``bytes.split``.

The plain shape: a valid boundary that occurs in the body only as the
delimiters (``--B`` first, ``\\r\\n--B`` between parts, ``\\r\\n--B--`` last, then
at most ``\\r\\n``); at most MAX_PARTS parts, each with a header block of at
most MAX_HEADER_BYTES, a ``Content-Disposition`` with a ``name``, no
``Content-Transfer-Encoding``; file names of plain characters; the fields
within Django's limits; a body Django's in-memory handler keeps
(``FILE_UPLOAD_MAX_MEMORY_SIZE``). Each header line is read by Django's own
``parse_header_parameters`` (the last KEPT distinct lines and Content-Types
are remembered). ``tests/api/test_multipart.py`` compares both
parsers over many bodies.
"""

from __future__ import annotations

import io
import re

from django.conf import settings
from django.core.files.uploadedfile import InMemoryUploadedFile
from django.http import QueryDict
from django.http.multipartparser import MultiPartParser
from django.utils.datastructures import MultiValueDict
from django.utils.encoding import force_str
from django.utils.http import parse_header_parameters

from yyai.http.remembered import Remembered

MAX_PARTS = 16
MAX_HEADER_BYTES = 1020  # Django looks for a part's headers in its first 1024 bytes
PLAIN_FILE_NAME = re.compile(r"[A-Za-z0-9_ .+-]+")  # Django's sanitize_file_name leaves these as they are
KEPT = 64  # header lines and Content-Types remembered, read once (clients send the same few again and again)
_INVALID = object()


def parse(body: bytes, content_type: str, encoding: str) -> tuple[QueryDict, MultiValueDict] | None:
    """The form, as Django's parser reads it, when ``body`` has the plain shape; else None."""
    delimiter = _delimiters(content_type)
    if delimiter is None or not body or len(body) > settings.FILE_UPLOAD_MAX_MEMORY_SIZE:
        return None
    parts = _parts(body, delimiter)
    if parts is None:
        return None
    data, files = QueryDict(mutable=True), MultiValueDict()
    field_bytes = fields = uploads = 0
    for part in parts:
        read = _part(part, encoding)
        if read is None:
            return None
        name, file_name, meta, payload = read
        if file_name is None:
            fields += 1
            field_bytes += len(payload) + len(name) + 2
            data.appendlist(name, force_str(payload, encoding, errors="replace"))
        else:
            uploads += 1
            content_type_value, extra = meta.get("content-type", ("", {}))
            upload = InMemoryUploadedFile(
                file=io.BytesIO(payload),
                field_name=name,
                name=file_name,
                content_type=content_type_value.strip(),
                size=len(payload),
                charset=extra.get("charset"),
                content_type_extra=extra,
            )
            files.appendlist(name, upload)
    if not _within_limits(fields, field_bytes, uploads):
        return None  # Django refuses it: its parser says so
    data._mutable = False
    return data, files


def _delimiter(content_type: str) -> bytes | None:
    """``--`` and the boundary of a multipart Content-Type Django accepts, if it cannot overlap itself."""
    if not content_type.startswith("multipart/") or not content_type.isascii():
        return None
    _, params = parse_header_parameters(content_type)
    boundary = params.get("boundary")
    if not boundary or not MultiPartParser.boundary_re.fullmatch(boundary):
        return None
    delimiter = b"--" + boundary.encode("ascii")
    if any(delimiter.endswith(delimiter[:size]) for size in range(1, len(delimiter))):
        return None  # a delimiter that can overlap itself: where Django's search cuts is another question
    return delimiter


def _parts(body: bytes, delimiter: bytes) -> list[bytes] | None:
    """The parts between the delimiters, when the delimiter occurs nowhere else; else None."""
    if body.endswith(b"\r\n"):
        body = body[:-2]
    if not (body.startswith(delimiter + b"\r\n") and body.endswith(b"\r\n" + delimiter + b"--")):
        return None
    inner = body[len(delimiter) + 2 : -(len(delimiter) + 4)]
    parts = inner.split(b"\r\n" + delimiter + b"\r\n")
    if len(parts) > MAX_PARTS or body.count(delimiter) != len(parts) + 1:
        return None  # the delimiter inside a part (Django would cut there too), or a long form
    return parts


def _part(part: bytes, encoding: str) -> tuple[str, str | None, dict, bytes] | None:
    """(field name, file name or None for a field, headers, payload) of a plain part; else None."""
    header_end = part.find(b"\r\n\r\n")
    if header_end == -1 or header_end > MAX_HEADER_BYTES:
        return None
    meta = {}
    for line in part[:header_end].split(b"\r\n"):
        header = _headers(line)
        if header is _INVALID or header[0] in meta:
            return None  # a line Django skips, or a header twice: which one Django keeps is another question
        name, value, params = header
        meta[name] = value, dict(params)
    disposition = meta.get("content-disposition", (None, {}))[1]
    if "name" not in disposition or "content-transfer-encoding" in meta:
        return None
    field_name = force_str(disposition["name"].strip(), encoding, errors="replace")
    if "filename" not in disposition:
        return field_name, None, meta, part[header_end + 4 :]
    file_name = force_str(disposition["filename"], encoding, errors="replace")
    if not PLAIN_FILE_NAME.fullmatch(file_name) or file_name in (".", ".."):
        return None  # empty (a field to Django), or a name Django would change
    return field_name, file_name, meta, part[header_end + 4 :]


def _header(line: bytes) -> tuple[str, str, dict[str, bytes]] | object:
    """(name, value, parameters) of a part's header line, as django.http.multipartparser.parse_boundary_stream
    reads it; _INVALID for a line it skips."""
    try:
        main_value_pair, params = parse_header_parameters(line.decode())
        name, value = main_value_pair.split(":", 1)
    except ValueError:
        return _INVALID
    return name, value, {key: item.encode() for key, item in params.items()}


_delimiters: Remembered[str, bytes | None] = Remembered(_delimiter, KEPT)
_headers: Remembered[bytes, tuple | object] = Remembered(_header, KEPT)


def _within_limits(fields: int, field_bytes: int, uploads: int) -> bool:
    """Django's DATA_UPLOAD_MAX_NUMBER_FIELDS, _MEMORY_SIZE and _NUMBER_FILES hold (else it refuses the form)."""
    max_fields, max_bytes = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS, settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    max_files = settings.DATA_UPLOAD_MAX_NUMBER_FILES
    return (
        (max_fields is None or fields <= max_fields)
        and (max_bytes is None or field_bytes <= max_bytes)
        and (max_files is None or uploads <= max_files)
    )
