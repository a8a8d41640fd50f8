"""The platform a build targets, and the ARGs BuildKit defines from it before the first FROM.

BuildKit puts ``TARGETPLATFORM``, ``TARGETOS``, ``TARGETARCH``, ``TARGETVARIANT`` and their
``BUILD*`` counterparts in the global scope: ``FROM base-${TARGETARCH}`` and a global
``ARG FLAVOR=${TARGETARCH}`` see them without declaring them. A platform string is read the way
BuildKit normalises it (``aarch64`` is ``linux/arm64``, ``linux/arm`` is ``linux/arm/v7``).
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

from pipeline_kit.errors import InputError

if TYPE_CHECKING:
    from pipeline_kit.config.loader import Config

# Architecture names BuildKit (containerd's platforms package) folds into its own.
_ARCH_ALIASES = {
    "x86_64": ("amd64", ""),
    "x86-64": ("amd64", ""),
    "amd64": ("amd64", ""),
    "aarch64": ("arm64", ""),
    "arm64": ("arm64", ""),
    "armhf": ("arm", "v7"),
    "armel": ("arm", "v6"),
    "i386": ("386", ""),
    "i486": ("386", ""),
    "i586": ("386", ""),
    "i686": ("386", ""),
    "386": ("386", ""),
}
_KNOWN_OS = frozenset(
    "aix android darwin dragonfly freebsd illumos ios js linux netbsd openbsd plan9 solaris "
    "wasip1 windows".split()
)
_PART = re.compile(r"^[a-z0-9_-]+$")


class Platform(NamedTuple):
    os: str
    arch: str
    variant: str = ""

    def __str__(self) -> str:
        return "/".join(part for part in (self.os, self.arch, self.variant) if part)


def parse_platform(text: str, *, what: str = "--platform") -> Platform:
    """``linux/arm64``, ``arm64``, ``linux/arm/v7`` ... as BuildKit normalises them."""
    parts = text.strip().lower().split("/")
    if not 1 <= len(parts) <= 3 or not all(_PART.match(part) for part in parts):
        raise InputError(
            f"{what}: {text!r} is not a platform.",
            hint="Write OS/ARCH[/VARIANT], e.g. linux/amd64, linux/arm64 or linux/arm/v7.",
        )
    if len(parts) == 1:
        if parts[0] in _KNOWN_OS:
            raise InputError(
                f"{what}: {text!r} names an OS but no architecture.",
                hint=f"Write {parts[0]}/ARCH, e.g. {parts[0]}/amd64.",
            )
        parts = ["linux", parts[0]]
    os_name, arch = parts[0], parts[1]
    variant = parts[2] if len(parts) == 3 else ""
    arch, default_variant = _ARCH_ALIASES.get(arch, (arch, ""))
    variant = variant or default_variant
    if arch == "arm64" and variant == "v8":
        variant = ""  # BuildKit drops arm64's default variant
    elif arch == "arm" and not variant:
        variant = "v7"
    return Platform(os_name, arch, variant)


def runner_platform() -> Platform:
    """The platform of the machine the kit runs on (what a builder here targets by default)."""
    machine = os.uname().machine.lower() or "amd64"  # platform.machine(), without its import
    if machine.startswith("armv"):
        return Platform("linux", "arm", machine[3:5])
    return parse_platform(f"linux/{machine}", what="this machine's platform")


def platform_of(config: Config) -> Platform:
    """The platform ``config`` builds for: ``--platform``, else its ``platform``, else the
    first of its ``platforms``, else the runner's; an unreadable one is an error naming where
    it was given. (A multi-platform build's Dockerfile is read for its first platform.)"""
    if config.platform is None:
        return platforms_of(config)[0]
    given = config.origins.get("platform", "config")
    what = "--platform" if given == "--platform" else f"{config.where('platform')}: platform"
    return parse_platform(config.platform, what=what)


def platforms_of(config: Config) -> tuple[Platform, ...]:
    """Every platform one build of ``config`` makes: one, unless ``platforms`` (or
    ``--platforms``) lists several and no ``--platform`` picks one of them."""
    if config.platform is not None:
        return (platform_of(config),)
    if not config.platforms:
        return (runner_platform(),)
    given = config.origins.get("platforms", "config")
    what = "--platforms" if given == "--platforms" else f"{config.where('platforms')}: platforms"
    return parse_platforms(config.platforms, what=what)


def parse_platforms(texts: Sequence[str], *, what: str = "--platforms") -> tuple[Platform, ...]:
    """Each platform read as ``parse_platform`` reads it; two that name the same platform once
    normalised (``arm64`` and ``linux/aarch64``) are refused."""
    seen: dict[Platform, str] = {}
    for text in texts:
        platform = parse_platform(text, what=what)
        if platform in seen:
            raise InputError(
                f"{what}: {text!r} is {seen[platform]!r} again ({platform}).",
                hint="List each platform once.",
            )
        seen[platform] = text
    if not seen:
        raise InputError(f"{what}: no platform given.", hint="e.g. linux/amd64,linux/arm64.")
    return tuple(seen)


def child_of(config: Config) -> Platform | None:
    """The platform when this build makes one child of a multi-platform image: ``--platform``
    picks one of the config's ``platforms`` (a Kaniko or buildah job of a matrix); else None.
    A platform the config does not list is refused: its child would not be merged."""
    if config.platform is None or not config.platforms:
        return None
    platform = platform_of(config)
    listed = platforms_of(dataclasses.replace(config, platform=None))
    if platform not in listed:
        raise InputError(
            f"--platform {config.platform}: not one of the platforms "
            f"{config.where('platforms')} lists ({', '.join(map(str, listed))}).",
            hint="Build one of those, or add it to `platforms`.",
        )
    return platform


def tag_suffix(platform: Platform) -> str:
    """What a child's tags end with (``-linux-arm64``), so the jobs of one multi-platform
    build do not overwrite each other's tags; ``merge`` finds the children by it."""
    return "-" + str(platform).replace("/", "-")


def automatic_args(target: Platform, build: Platform | None = None) -> dict[str, str]:
    """The ARGs BuildKit defines in the global scope for a build of ``target`` on ``build``."""
    build = build or runner_platform()
    out: dict[str, str] = {}
    for prefix, plat in (("TARGET", target), ("BUILD", build)):
        out[f"{prefix}PLATFORM"] = str(plat)
        out[f"{prefix}OS"] = plat.os
        out[f"{prefix}ARCH"] = plat.arch
        out[f"{prefix}VARIANT"] = plat.variant
    return out


AUTOMATIC_ARGS = frozenset(automatic_args(Platform("linux", "amd64"), Platform("linux", "amd64")))
