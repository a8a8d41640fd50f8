"""in-toto Statement v1: the envelope both attestations share, and how one is read back.

A statement names its subject by digest; the kit attaches it to that same digest as an OCI
artifact of type ``application/vnd.in-toto+json``, with the predicate type as an annotation
(``in-toto.io/predicate-type``), as BuildKit and cosign attach theirs. Both attestations take
this one shape, so one check (the subject is the image) covers both.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
ARTIFACT_TYPE = "application/vnd.in-toto+json"
PREDICATE_ANNOTATION = "in-toto.io/predicate-type"
PROVENANCE = "https://slsa.dev/provenance/v1"
SPDX = "https://spdx.dev/Document"


class BadStatement(Exception):
    """Not an in-toto Statement v1 the kit can read."""


def statement(image: str, digest: str, predicate_type: str, predicate: Mapping[str, Any]) -> bytes:
    """The statement about ``image`` (registry/repository) at ``digest``, as JSON bytes."""
    document = {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": image, "digest": {"sha256": digest.removeprefix("sha256:")}}],
        "predicateType": predicate_type,
        "predicate": dict(predicate),
    }
    return json.dumps(document, indent=None, separators=(",", ":"), sort_keys=False).encode()


def read_statement(data: bytes) -> dict[str, Any]:
    """The statement's JSON, checked for the shape Statement v1 requires."""
    try:
        document = json.loads(data)
    except ValueError:
        raise BadStatement("not JSON") from None
    if not isinstance(document, dict) or document.get("_type") != STATEMENT_TYPE:
        raise BadStatement(f"_type is not {STATEMENT_TYPE}")
    subjects = document.get("subject")
    if not isinstance(subjects, list) or not subjects:
        raise BadStatement("it has no subject")
    for subject in subjects:
        digests = subject.get("digest") if isinstance(subject, dict) else None
        if not isinstance(digests, dict) or not digests:
            raise BadStatement("a subject has no digest")
    if not isinstance(document.get("predicateType"), str):
        raise BadStatement("it has no predicateType")
    if "predicate" in document and not isinstance(document["predicate"], dict):
        raise BadStatement("its predicate is not an object")
    return document


def subject_digests(document: Mapping[str, Any]) -> list[str]:
    """The sha256 digests its subjects name, as ``sha256:<hex>``."""
    return [
        f"sha256:{subject['digest'].get('sha256', '')}"
        for subject in document.get("subject") or []
        if isinstance(subject, dict) and isinstance(subject.get("digest"), dict)
    ]
