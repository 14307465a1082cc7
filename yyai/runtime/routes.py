"""Which version of an app a request gets: version labels and a canary share (after TF Serving's version labels
and KServe's canary traffic split).

An app serves its target version by default. It may serve more versions at
once, each named by one or more labels (``stable``, ``canary``, any name); a
request names a version by number or id, or by label. A request that names
none goes to the version labelled ``canary`` with probability
``canary_percent`` / 100, else to the target; with ``canary_header`` set, the
choice is sticky: a request carrying that header goes where its value hashes
(the same in every process), so one user stays on one version.
"""

from __future__ import annotations

import random
import re
import zlib
from dataclasses import dataclass, field
from typing import Mapping

from .errors import InputError, VersionNotFound

LABEL = re.compile(r"[a-z][a-z0-9_-]{0,31}")
CANARY = "canary"


@dataclass(frozen=True)
class Routes:
    """One app's labels (label -> version id) and canary share; the default routes nothing anywhere."""

    labels: Mapping[str, str] = field(default_factory=dict)
    canary_percent: int = 0
    canary_header: str = ""

    def __post_init__(self):
        if not isinstance(self.labels, Mapping) or not all(isinstance(v, str) and v for v in self.labels.values()):
            raise InputError('labels must be an object of label -> version ({"canary": "4"})')
        for label in self.labels:
            if not LABEL.fullmatch(label):
                raise InputError(f"'{label}' is not a valid label (a lowercase letter, then a-z 0-9 _ -, up to 32)")
        if not 0 <= self.canary_percent <= 100:
            raise InputError("canary_percent must be from 0 to 100")
        if self.canary_percent and CANARY not in self.labels:
            raise InputError("canary_percent needs a version labelled 'canary'")

    @property
    def versions(self) -> set[str]:
        """The versions the labels name."""
        return set(self.labels.values())

    def of_label(self, label: str) -> str:
        """The version ``label`` names; VersionNotFound (TF Serving's words) if none."""
        try:
            return self.labels[label]
        except KeyError:
            known = ", ".join(sorted(self.labels)) or "none"
            raise VersionNotFound(f"Unrecognized servable version label: {label} (labels: {known})") from None

    def pick(self, sticky: str | None = None) -> str | None:
        """The version a request that names none goes to: the canary's for its share, else None (the target).
        ``sticky``: the value of the request's ``canary_header``, if it has one."""
        if not self.canary_percent:
            return None
        if sticky and self.canary_header:
            bucket = zlib.crc32(sticky.encode("utf-8", "surrogatepass")) % 100
        else:
            bucket = random.randrange(100)
        return self.labels[CANARY] if bucket < self.canary_percent else None

    def describe(self) -> dict:
        return {
            "labels": dict(self.labels),
            "canary_percent": self.canary_percent,
            "canary_header": self.canary_header or None,
        }
