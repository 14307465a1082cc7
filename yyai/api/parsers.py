"""DRF's JSON parser with the nesting depth bounded (:mod:`yyai.bounded_json`): too deep is a 400, not a 500."""

from __future__ import annotations

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from yyai import bounded_json
from yyai.conf import yyai_settings


class BoundedJSONParser(JSONParser):
    """JSONParser that refuses bodies nested deeper than YYAI_MAX_JSON_DEPTH, NaN and Infinity."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        if encoding.lower().replace("_", "-") not in ("utf-8", "utf8"):
            raise ParseError(f"JSON must be UTF-8, not {encoding}")
        try:
            return bounded_json.loads(stream.read(), max_depth=yyai_settings.MAX_JSON_DEPTH)
        except bounded_json.JSONError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
