"""yyai/http/multipart.py against Django's MultiPartParser: the same form, or None and Django reads it."""

import io

import pytest
from django.conf import settings
from django.core.files.uploadhandler import MemoryFileUploadHandler
from django.http.multipartparser import MultiPartParser
from django.test import override_settings
from urllib3 import encode_multipart_formdata

from yyai.http import django_mirror, multipart

JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8 + b"\r\n\r\n--not-the-boundary\r\n" + b"\xff\xd9"
B = "b0undary42"
CURL_B = "------------------------d74496d66958873e"


def django_form(body: bytes, content_type: str):
    """What Django's parser makes of it: (fields, files) in plain values, or the error's class."""
    meta = {"CONTENT_TYPE": content_type, "CONTENT_LENGTH": str(len(body))}
    try:
        data, files = MultiPartParser(
            meta, io.BytesIO(body), [MemoryFileUploadHandler()], settings.DEFAULT_CHARSET
        ).parse()
    except Exception as exc:  # noqa: BLE001 - whatever Django raises (MultiPartParserError, SuspiciousOperation)
        return type(exc).__name__
    return plain(data, files)


def plain(data, files):
    return (
        sorted(data.lists()),
        sorted(
            (
                name,
                [
                    (f.name, f.field_name, f.content_type, f.charset, f.content_type_extra, f.size, f.read())
                    for f in uploads
                ],
            )
            for name, uploads in files.lists()
        ),
        data._mutable,
    )


def ours(body: bytes, content_type: str):
    parsed = multipart.parse(body, content_type, settings.DEFAULT_CHARSET)
    return None if parsed is None else plain(*parsed)


def form(*parts: bytes, boundary: str = B, end: bytes = b"--" + B.encode() + b"--\r\n") -> bytes:
    delimiter = b"--" + boundary.encode()
    return b"".join(delimiter + b"\r\n" + part + b"\r\n" for part in parts) + end


def part(headers: str, payload: bytes) -> bytes:
    return headers.encode() + b"\r\n\r\n" + payload


IMG = 'Content-Disposition: form-data; name="img"; filename="face.jpg"\r\nContent-Type: image/jpeg'
PLAIN = {
    "urllib3 (requests)": encode_multipart_formdata({"img": ("face.jpg", JPEG, "image/jpeg")}, boundary=B),
    "urllib3 with a field": encode_multipart_formdata(
        {"img": ("a.png", JPEG, "image/png"), "inputs": '{"x": [1, 2]}'}, boundary=B
    ),
    "curl -F": (
        form(part(IMG, JPEG), boundary=CURL_B, end=b"--" + CURL_B.encode() + b"--\r\n"),
        f"multipart/form-data; boundary={CURL_B}",
    ),
    "no final CRLF": (form(part(IMG, JPEG), end=b"--" + B.encode() + b"--"), f"multipart/form-data; boundary={B}"),
    "two files, one name": (form(part(IMG, JPEG), part(IMG, b"second")), f"multipart/form-data; boundary={B}"),
    "quoted boundary": (form(part(IMG, JPEG)), f'multipart/form-data; boundary="{B}"'),
    "charset of a file": (
        form(
            part(
                'Content-Disposition: form-data; name="f"; filename="t.txt"\r\nContent-Type: text/plain; '
                "charset=latin-1",
                "é".encode("latin-1"),
            )
        ),
        f"multipart/form-data; boundary={B}",
    ),
    "upper-case headers": (
        form(part('CONTENT-DISPOSITION: form-data; name="img"; filename="F.JPG"\r\nCONTENT-TYPE: IMAGE/JPEG', JPEG)),
        f"multipart/form-data; boundary={B}",
    ),
    "a field of non-UTF-8 bytes": (
        form(part('Content-Disposition: form-data; name="inputs"', b"\xff\xfe{}")),
        f"multipart/form-data; boundary={B}",
    ),
    "an empty file": (form(part(IMG, b"")), f"multipart/form-data; boundary={B}"),
}

ODD = {
    "preamble": (b"preamble\r\n" + form(part(IMG, JPEG)), f"multipart/form-data; boundary={B}"),
    "epilogue": (form(part(IMG, JPEG)) + b"epilogue", f"multipart/form-data; boundary={B}"),
    "LF only": (form(part(IMG, JPEG)).replace(b"\r\n", b"\n"), f"multipart/form-data; boundary={B}"),
    "boundary inside the file": (form(part(IMG, b"x--" + B.encode() + b"y")), f"multipart/form-data; boundary={B}"),
    "no final delimiter": (form(part(IMG, JPEG), end=b""), f"multipart/form-data; boundary={B}"),
    "empty file name": (
        form(part('Content-Disposition: form-data; name="img"; filename=""', JPEG)),
        f"multipart/form-data; boundary={B}",
    ),
    "a path as file name": (
        form(part('Content-Disposition: form-data; name="img"; filename="../../etc/x.jpg"', JPEG)),
        f"multipart/form-data; boundary={B}",
    ),
    "RFC 2231 file name": (
        form(part("Content-Disposition: form-data; name=\"img\"; filename*=UTF-8''%C3%A9.jpg", JPEG)),
        f"multipart/form-data; boundary={B}",
    ),
    "base64 transfer encoding": (
        form(part(IMG + "\r\nContent-Transfer-Encoding: base64", b"aGVsbG8=")),
        f"multipart/form-data; boundary={B}",
    ),
    "no disposition": (form(part("Content-Type: image/jpeg", JPEG)), f"multipart/form-data; boundary={B}"),
    "no name": (
        form(part('Content-Disposition: form-data; filename="a.jpg"', JPEG)),
        f"multipart/form-data; boundary={B}",
    ),
    "no headers": (form(b"just bytes"), f"multipart/form-data; boundary={B}"),
    "disposition twice": (
        form(
            part(
                'Content-Disposition: form-data; name="a"\r\nContent-Disposition: form-data; name="b"; '
                'filename="x.jpg"',
                JPEG,
            )
        ),
        f"multipart/form-data; boundary={B}",
    ),
    "a self-overlapping boundary": (
        form(part(IMG, JPEG), boundary="-", end=b"----\r\n"),
        "multipart/form-data; boundary=-",
    ),
    "no boundary": (form(part(IMG, JPEG)), "multipart/form-data"),
    "an invalid boundary": (form(part(IMG, JPEG)), "multipart/form-data; boundary=" + "x" * 300),
    "upper-case media type": (form(part(IMG, JPEG)), f"Multipart/Form-Data; boundary={B}"),
    "many parts": (
        form(*[part(f'Content-Disposition: form-data; name="f{i}"', b"v") for i in range(40)]),
        f"multipart/form-data; boundary={B}",
    ),
    "empty body": (b"", f"multipart/form-data; boundary={B}"),
}


@pytest.mark.parametrize("case", sorted(PLAIN))
def test_a_plain_form_is_read_here_as_django_reads_it(case):
    body, content_type = PLAIN[case]
    got = ours(body, content_type)
    assert got is not None, "the plain shape must not fall back"
    assert got == django_form(body, content_type)


@pytest.mark.parametrize("case", sorted(ODD))
def test_anything_else_is_left_to_django(case):
    body, content_type = ODD[case]
    assert ours(body, content_type) is None


@pytest.mark.parametrize("case", sorted(PLAIN) + sorted(ODD))
def test_parse_body_answers_as_django_alone_would(case):
    body, content_type = {**PLAIN, **ODD}[case]
    expected = django_form(body, content_type)
    parsed = django_mirror.parse_body(body, content_type)
    assert (None if parsed is None else plain(*parsed)) == (None if isinstance(expected, str) else expected)


def test_django_s_limits_hold():
    body, content_type = PLAIN["urllib3 with a field"]
    with override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=10):
        assert ours(body, content_type) is None and isinstance(django_form(body, content_type), str)
    with override_settings(DATA_UPLOAD_MAX_NUMBER_FILES=0):
        assert ours(body, content_type) is None and isinstance(django_form(body, content_type), str)
    with override_settings(FILE_UPLOAD_MAX_MEMORY_SIZE=100):  # Django's in-memory handler would keep no file
        assert ours(body, content_type) is None


def test_what_is_remembered_stays_bounded_whatever_clients_send():
    for n in range(500):
        boundary = f"b{n}x"
        body = form(
            part(f'Content-Disposition: form-data; name="f{n}"', b"v"),
            boundary=boundary,
            end=b"--" + boundary.encode() + b"--",
        )
        assert ours(body, f"multipart/form-data; boundary={boundary}")[0] == [(f"f{n}", ["v"])]
    assert len(multipart._delimiters) <= multipart.KEPT and len(multipart._headers) <= multipart.KEPT
