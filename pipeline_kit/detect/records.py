"""Where a build records content keys in its image's repository: tags named by key.

``pk-<image key>`` names an image by its content, ``pk-on-<stage key>`` the newest image built
on a stage (what append builds on). A trusted run writes these; an untrusted one writes its
own under ``pkx-<scope>-`` and reads both (``pipeline_kit.ci.trust``).
"""

from __future__ import annotations

from pipeline_kit.ci.trust import TRUSTED, TRUSTED_KEY_PREFIX, Trust
from pipeline_kit.detect.changes import Detection


def key_tag(image_key: str, prefix: str = TRUSTED_KEY_PREFIX) -> str:
    """The tag that records an image's content key (a key is 64 hex digits: fits in 128)."""
    return f"{prefix}{image_key}"


def on_tag(stage_key: str, prefix: str = TRUSTED_KEY_PREFIX) -> str:
    """The tag naming the newest image built on a stage with this key (for append)."""
    return f"{prefix}on-{stage_key}"


def on_tags(detection: Detection, prefix: str = TRUSTED_KEY_PREFIX) -> list[str]:
    """``pk-on-<key>`` for the instructions below an inferred last layer that starts inside a
    stage, then for each stage the target is built FROM (nearest first)."""
    tags = [on_tag(detection.append_base_key, prefix)] if detection.append_base_key else []
    return tags + [on_tag(key, prefix) for _, key in reversed(detection.chain_stages[:-1])]


def read_prefixes(trust: Trust) -> tuple[str, ...]:
    """Whose content-key records a run looks up: the protected refs', then its own."""
    return tuple(dict.fromkeys((TRUSTED_KEY_PREFIX, trust.key_prefix)))


def previous_candidates(detection: Detection, trust: Trust = TRUSTED) -> list[str]:
    """Where an image to append to may be: the base commit's image, then by stage key."""
    tags = []
    for prefix in read_prefixes(trust):
        if detection.base_image_key and detection.base_image_key != detection.image_key:
            tags.append(key_tag(detection.base_image_key, prefix))
        tags += on_tags(detection, prefix)
    return tags
