"""PK005 to PK008: how the image is assembled: its base, system packages, user and context."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

from pipeline_kit.dockerfile.expand import expand, uses_variables
from pipeline_kit.dockerfile.stages import Instruction, Stage, parse_mount
from pipeline_kit.lint.model import Hit, LintInput
from pipeline_kit.lint.shell import commands, operands, program, run_mounts, run_script, simple

_DIGEST = re.compile(r"@[A-Za-z0-9_+.-]+:[0-9a-fA-F]{32,}$")
_APT = frozenset(("apt-get", "apt"))
_APT_VALUE_OPTIONS = frozenset(("-o", "-t", "-c", "--option", "--target-release", "--config-file"))
_NO_RECOMMENDS = re.compile(r"APT::Install-Recommends=[\"']?(?:0|false)", re.IGNORECASE)
_APT_LISTS = "/var/lib/apt/lists"
_APT_CACHES = ("/var/lib/apt", "/var/cache/apt")
_ROOT = frozenset(("root", "0"))


def base_image_not_pinned(lint: LintInput) -> Iterator[Hit]:
    for stage in lint.stages:
        image = stage.from_image
        if image is not None and image.lower() != "scratch" and not _DIGEST.search(image):
            origin = _arg_origin(dict(stage.from_args))
            yield Hit(
                lint.dockerfile,
                stage.line,
                f"FROM {image}{origin} is not pinned by digest: the tag can point at a "
                "different image on the next build.",
                fix=_pin_fix(image, dict(stage.from_args)),
            )
        scope = {**dict(stage.args), **dict(stage.env)}
        for ins in stage.instructions[1:]:
            for raw, via in _image_references(ins):
                ref = expand(raw, scope)
                if ref in stage.image_refs and not _DIGEST.search(ref):
                    used = {name: scope.get(name) for name in uses_variables(raw)}
                    yield Hit(
                        lint.dockerfile,
                        ins.line,
                        f"{via}{ref}{_arg_origin(used)} takes files from an image not pinned by "
                        "digest: the tag can point at different files on the next build.",
                        fix=_pin_fix(ref, used),
                    )


def _image_references(ins: Instruction) -> Iterator[tuple[str, str]]:
    if ins.cmd in ("COPY", "ADD"):
        source = ins.flag("from")
        if source:
            yield source, f"{ins.cmd} --from="
    elif ins.cmd == "RUN":
        for spec in ins.flag_values("mount"):
            mount = parse_mount(spec)
            if mount.get("from"):
                yield mount["from"], "RUN --mount from="


def _arg_origin(args: Mapping[str, str | None]) -> str:
    if not args:
        return ""
    shown = ", ".join(
        f"ARG {name}={value}" if value is not None else f"ARG {name} (unset)"
        for name, value in sorted(args.items())
    )
    return f" (from {shown})"


def _pin_fix(image: str, args: Mapping[str, str | None]) -> str:
    where = f" set ARG {', '.join(sorted(args))} to" if args else ""
    return (
        f"Pin it by digest:{where} {image}@sha256:<digest> "
        f"(`docker buildx imagetools inspect {image}` prints the digest)."
    )


def apt_hygiene(lint: LintInput) -> Iterator[Hit]:
    # A builder stage that others only COPY --from ships what they copy, not its packages or
    # its package lists: only the stages a final image is made of count.
    for stage in lint.image_stages:
        for ins in stage.instructions:
            if ins.cmd != "RUN":
                continue
            words = [simple(c) for c in commands(run_script(ins))]
            apt_installs = [w for w in words if _is_apt_install(w)]
            # Only a RUN that fetches the package lists writes them into its layer: an install
            # without an update reads lists a lower layer left, and removing them there would
            # hide them without making the image any smaller.
            updates = [w for w in words if _updates_lists(w)]
            if apt_installs and not all(_skips_recommends(w) for w in apt_installs):
                tool = program(apt_installs[0])
                yield Hit(
                    lint.dockerfile,
                    ins.line,
                    f"{tool} install without --no-install-recommends also installs recommended "
                    "packages the model server never uses.",
                    fix=f"Add --no-install-recommends to {tool} install.",
                )
            if not updates or any(_removes_lists(w) for w in words) or _caches_apt(ins):
                continue
            if apt_installs:
                yield Hit(
                    lint.dockerfile,
                    ins.line,
                    f"{program(apt_installs[0])} install leaves the package lists of "
                    f"{_APT_LISTS} in the layer.",
                    fix=f"End the same RUN with `rm -rf {_APT_LISTS}/*`, or mount a cache on "
                    "/var/lib/apt and /var/cache/apt.",
                )
            else:
                what = program(updates[0]) + (" update" if _is_apt(updates[0]) else "")
                yield Hit(
                    lint.dockerfile,
                    ins.line,
                    f"{what} leaves the package lists of {_APT_LISTS} in the layer.",
                    fix="Update and install in one RUN that ends with "
                    f"`rm -rf {_APT_LISTS}/*`, or mount a cache on /var/lib/apt and "
                    "/var/cache/apt.",
                )


def _is_apt(words: list[str]) -> bool:
    return program(words) in _APT


def _is_apt_install(words: list[str]) -> bool:
    return _is_apt(words) and operands(words, _APT_VALUE_OPTIONS)[:1] == ["install"]


def _updates_lists(words: list[str]) -> bool:
    """Whether the command fetches the package lists: apt-get update, or
    add-apt-repository, which updates unless told not to."""
    if _is_apt(words):
        return operands(words, _APT_VALUE_OPTIONS)[:1] == ["update"]
    return program(words) == "add-apt-repository" and not {"-n", "--no-update"} & set(words)


def _skips_recommends(words: list[str]) -> bool:
    return "--no-install-recommends" in words or any(_NO_RECOMMENDS.search(w) for w in words)


def _removes_lists(words: list[str]) -> bool:
    return program(words) == "rm" and any(w.startswith(_APT_LISTS) for w in words[1:])


def _caches_apt(ins: Instruction) -> bool:
    return any(
        mount["type"] == "cache" and mount.get("target", "").startswith(_APT_CACHES)
        for mount in run_mounts(ins)
    )


def runs_as_root(lint: LintInput) -> Iterator[Hit]:
    target = lint.target
    chain = lint.chain(target)
    user = target.user
    if user is None or user.split(":", 1)[0] in _ROOT:
        yield _root_hit(lint, target, chain, user)
        return
    for stage in chain:
        for ins in stage.instructions:
            if ins.cmd == "RUN" and "NOPASSWD" in run_script(ins):
                yield Hit(
                    lint.dockerfile,
                    ins.line,
                    f"USER {user} can become root without a password: this RUN grants it "
                    "NOPASSWD sudo, so the server effectively runs as root.",
                    fix="Install what needs root before USER and drop sudo from the image.",
                )


def _root_hit(lint: LintInput, target: Stage, chain: list[Stage], user: str | None) -> Hit:
    if user is None:
        return Hit(
            lint.dockerfile,
            target.line,
            f"The target stage '{target.label}' sets no USER, so the model server runs as root.",
        )
    line = [ins.line for stage in chain for ins in stage.instructions if ins.cmd == "USER"][-1]
    return Hit(
        lint.dockerfile,
        line,
        f"The target stage '{target.label}' runs as USER {user}.",
    )


def no_dockerignore(lint: LintInput) -> Iterator[Hit]:
    if lint.ignore_file is None:
        yield Hit(
            lint.dockerfile,
            1,
            f"No .dockerignore in the build context ({lint.display(lint.context)}): all of it, "
            "weights and .git included, is sent to the builder on every build.",
        )
