"""The ``command`` provider: the user's own up, down and url commands (helm, a PaaS CLI, ...).

Each command is an argv list with ``{name}``, ``{image}``, ``{digest}``, ``{repository}``,
``{ref}``, ``{owner}``, ``{port}``, ``{expires}``, ``{scope}`` and ``{weights}`` filled in (and
the same values in ``PIPELINE_KIT_PREVIEW_*`` variables). No shell runs unless the user writes
``sh -c``. ``down`` must succeed when the preview is already gone.

``{ref}`` is the ref cleaned to ``[A-Za-z0-9._-]`` (a branch name may hold ``$``, ``;`` or a
backtick); the ref as written is only in ``PIPELINE_KIT_PREVIEW_RAW_REF``. The commands get a
clean environment: a few basics, the preview's values and the variables ``preview.command.env``
names, never the kit's credentials and tokens.
"""

from __future__ import annotations

import contextlib
import json
import string
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipeline_kit.errors import ConfigError, EnvironmentFault
from pipeline_kit.preview.model import Preview, PreviewSpec, compact_time, parse_time

if TYPE_CHECKING:
    from pipeline_kit.preview.settings import PreviewContext

UP_FIELDS = (
    "name", "image", "digest", "repository", "ref", "owner", "port", "expires", "scope", "weights",
)  # fmt: skip
NAME_FIELDS = ("name", "scope")  # what down, status and logs know: a name, not an image
BASIC_ENV = ("PATH", "HOME", "USER", "LANG", "LC_ALL", "TZ", "TMPDIR")


def fields_of(template: str) -> list[str]:
    return [field for _, field, _, _ in string.Formatter().parse(template) if field is not None]


def expand(
    argv: Sequence[str], values: Mapping[str, str], key: str, allowed: Sequence[str]
) -> list[str]:
    """``argv`` with its placeholders filled; an unknown one is a config error naming ``key``."""
    for part in argv:
        try:
            unknown = [f for f in fields_of(part) if f not in allowed]
        except ValueError as exc:
            raise ConfigError(f"preview.command.{key}: {part!r}: {exc}.") from None
        if unknown:
            raise ConfigError(
                f"preview.command.{key}: {part!r} uses {{{unknown[0]}}}.",
                hint=f"Placeholders here: {', '.join('{' + f + '}' for f in allowed)} "
                "(write {{ and }} for literal braces).",
            )
    return [part.format_map(values) for part in argv]


def spec_values(spec: PreviewSpec, port: int) -> dict[str, str]:
    from pipeline_kit.publish.tags import clean_tag

    return {
        "name": spec.name,
        "image": spec.image,
        "digest": spec.digest,
        "repository": spec.image.rsplit("@", 1)[0],
        "ref": clean_tag(spec.ref),
        "owner": spec.owner,
        "port": str(port),
        "expires": compact_time(spec.expires),
        "scope": spec.scope,
        "weights": str(spec.weights or ""),
    }


def environment(values: Mapping[str, str]) -> dict[str, str]:
    return {f"PIPELINE_KIT_PREVIEW_{name.upper()}": value for name, value in values.items()}


def command_environ(
    environ: Mapping[str, str], names: Sequence[str], values: Mapping[str, str]
) -> dict[str, str]:
    """What a command runs with: the basics and the ``names`` the user gave, from ``environ``,
    and the preview's values."""
    passed = {name: environ[name] for name in (*BASIC_ENV, *names) if name in environ}
    return {**passed, **environment(values)}


@dataclass(frozen=True)
class CommandSettings:
    up: tuple[str, ...]
    down: tuple[str, ...]
    url: str | tuple[str, ...] | None = None  # a template, or a command that prints the URL
    status: tuple[str, ...] | None = None
    list: tuple[str, ...] | None = None  # prints a JSON list of previews (name, expires, ...)
    logs: tuple[str, ...] | None = None
    env: tuple[str, ...] = ()  # variables passed on by name

    @classmethod
    def from_section(cls, section: Mapping[str, Any], where: str) -> CommandSettings:
        missing = [key for key in ("up", "down") if not section.get(key)]
        if missing:
            raise ConfigError(
                f"{where}: preview.command.{missing[0]} is required for the command provider.",
                hint="Give argv lists, e.g. up: [helm, upgrade, --install, '{name}', ...].",
            )

        def argv(key: str) -> tuple[str, ...] | None:
            value = section.get(key)
            return tuple(str(part) for part in value) if value else None

        url = section.get("url")
        return cls(
            up=argv("up") or (),
            down=argv("down") or (),
            url=url if isinstance(url, str) else argv("url"),
            status=argv("status"),
            list=argv("list"),
            logs=argv("logs"),
            env=tuple(str(name) for name in section.get("env") or ()),
        )


def _last_line(text: str) -> str | None:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else None


class CommandProvider:
    name = "command"

    def _settings(self, ctx: PreviewContext) -> CommandSettings:
        where = ctx.config.where("preview", "command")
        return CommandSettings.from_section(ctx.settings.part("command"), where)

    def _run(
        self,
        ctx: PreviewContext,
        argv: list[str],
        values: Mapping[str, str],
        raw_ref: str | None = None,
    ) -> str:
        from pipeline_kit.adapters.process import run

        env = command_environ(ctx.environ, self._settings(ctx).env, values)
        if raw_ref is not None:
            env["PIPELINE_KIT_PREVIEW_RAW_REF"] = raw_ref
        proc = run(argv, cwd=ctx.config.root, env=env, clean_env=True)
        for line in proc.stderr.decode(errors="replace").splitlines():
            ctx.say(f"{argv[0]}: {line}")
        return proc.stdout.decode(errors="replace")

    def up(self, ctx: PreviewContext, spec: PreviewSpec) -> Preview:
        from pipeline_kit.adapters.net import free_loopback_port

        settings = self._settings(ctx)
        values = spec_values(spec, spec.port or free_loopback_port())
        ctx.say(f"command: bringing up {spec.name}")
        out = self._run(ctx, expand(settings.up, values, "up", UP_FIELDS), values, spec.ref)
        url: str | None
        if isinstance(settings.url, str):
            url = expand([settings.url], values, "url", UP_FIELDS)[0]
        elif settings.url:
            argv = expand(settings.url, values, "url", UP_FIELDS)
            url = _last_line(self._run(ctx, argv, values, spec.ref))
        else:
            last = _last_line(out)
            url = last if last and last.startswith(("http://", "https://")) else None
        return Preview.from_spec(spec, self.name, url)

    def _name_values(self, ctx: PreviewContext, name: str) -> dict[str, str]:
        return {"name": name, "scope": ctx.settings.scope}

    def down(self, ctx: PreviewContext, name: str) -> bool:
        settings = self._settings(ctx)
        values = self._name_values(ctx, name)
        self._run(ctx, expand(settings.down, values, "down", NAME_FIELDS), values)
        return True

    def previews(self, ctx: PreviewContext) -> list[Preview]:
        settings = self._settings(ctx)
        if not settings.list:
            raise ConfigError(
                "preview.command.list is not set: the command provider cannot list previews.",
                hint="Give a command that prints a JSON list of {name, expires, ...} "
                "(or, to ask about one preview, preview.command.status).",
            )
        values = {"scope": ctx.settings.scope}
        out = self._run(ctx, expand(settings.list, values, "list", ("scope",)), values)
        try:
            items = json.loads(out or "[]")
        except ValueError:
            raise EnvironmentFault(
                f"preview.command.list printed no JSON list: {out[:200]!r}."
            ) from None
        previews = []
        for item in items if isinstance(items, list) else []:
            if not isinstance(item, dict) or "name" not in item:
                continue
            previews.append(
                Preview(
                    name=str(item["name"]),
                    provider=self.name,
                    scope=ctx.settings.scope,
                    image=item.get("image"),
                    ref=item.get("ref"),
                    owner=item.get("owner"),
                    created=parse_time(item.get("created")),
                    expires=parse_time(item.get("expires")),
                    url=item.get("url"),
                    state=str(item.get("state", "running")),
                )
            )
        return previews

    def find(self, ctx: PreviewContext, name: str) -> Preview | None:
        """From ``preview.command.list``, else ``preview.command.status`` (exit 0: running)."""
        from pipeline_kit.adapters.process import CommandFailed

        settings = self._settings(ctx)
        if settings.list or not settings.status:
            return next((p for p in self.previews(ctx) if p.name == name), None)
        values = self._name_values(ctx, name)
        try:
            self._run(ctx, expand(settings.status, values, "status", NAME_FIELDS), values)
        except CommandFailed:
            return None
        return Preview(name=name, provider=self.name, scope=ctx.settings.scope)

    def alive(self, ctx: PreviewContext, name: str) -> str | None:
        return None

    def logs(self, ctx: PreviewContext, name: str, lines: int) -> str:
        settings = self._settings(ctx)
        if not settings.logs:
            return ""
        values = self._name_values(ctx, name)
        try:
            out = self._run(ctx, expand(settings.logs, values, "logs", NAME_FIELDS), values)
        except EnvironmentFault as exc:
            return str(exc)
        return "\n".join(out.splitlines()[-lines:])

    @contextlib.contextmanager
    def reach(self, ctx: PreviewContext, preview: Preview) -> Iterator[str]:
        if not preview.url:
            raise ConfigError(
                "preview.command: the preview has no URL to gate.",
                hint="Set preview.command.url (a template or a command), or print the URL "
                "as the last line of the up command.",
            )
        yield preview.url
