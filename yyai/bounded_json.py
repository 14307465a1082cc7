"""JSON for every parser of every protocol: nesting depth bounded before anything is built.

``json.loads`` recurses once per nesting level: 100,000 levels end in a
RecursionError (a 500) deep inside the parser. :func:`loads` measures the
depth first, at C speed (strings blanked out by one linear regex, brackets
summed by numpy), and refuses a body nested deeper than ``max_depth`` with
:class:`JSONError`, as it refuses malformed JSON, ``NaN`` and ``Infinity``.
Bodies with few brackets (an image in base64) skip the measurement.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np

DEFAULT_MAX_DEPTH = 64  # tensors have at most 32 dimensions; objects around them need a few levels
# A JSON string, or an unterminated one running to the end: one pass, whatever the quotes and backslashes.
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*+(?:"|\Z)', re.DOTALL)


class JSONError(ValueError):
    """The body is not JSON this server reads: malformed, nested too deeply, or NaN / Infinity."""


def loads(body: bytes | str, *, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """Parse ``body`` (UTF-8); JSONError with words a caller can act on."""
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    check_depth(raw, max_depth)
    try:
        text = raw.decode("utf-8")
        if text.startswith("\ufeff"):  # as json.loads words it
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
        return _DECODER.decode(text)
    except UnicodeDecodeError:
        raise JSONError("the body is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise JSONError(f"the body is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    except RecursionError:
        raise JSONError(f"the JSON is nested more than {max_depth} levels deep") from None
    except ValueError as exc:  # NaN / Infinity (ours), integers past Python's digit limit
        words = str(exc) if str(exc).endswith("is not JSON") else "a number is too long"
        raise JSONError(f"the body is not valid JSON ({words})") from None


def check_depth(raw: bytes, max_depth: int) -> None:
    """JSONError when ``raw`` nests arrays and objects more than ``max_depth`` levels deep."""
    if raw.count(b"[") + raw.count(b"{") <= max_depth:
        return
    codes = np.frombuffer(_STRING.sub(b'""', raw), np.uint8)
    steps = ((codes == 91) | (codes == 123)).view(np.int8) - ((codes == 93) | (codes == 125)).view(np.int8)
    if steps.size and int(np.cumsum(steps, dtype=np.int32).max()) > max_depth:  # 91 [, 123 {, 93 ], 125 }
        raise JSONError(f"the JSON is nested more than {max_depth} levels deep")


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON")


# One decoder for every body: json.loads(..., parse_constant=...) builds a decoder and its scanner per call
# (7 of its 12 us on a 4.5 kB body).
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)
