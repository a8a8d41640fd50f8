"""What the Dockerfile says about the server it runs: its port and its health endpoint.

``init`` writes them into ``service:`` where the image's own instructions state them: the
port from ``ENV PORT=``, else ``EXPOSE``, else the URL its ``HEALTHCHECK`` asks; the health
paths from that URL. Only the target's FROM chain counts: that is what the image runs.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from pipeline_kit.dockerfile.expand import expand
from pipeline_kit.dockerfile.stages import Instruction, StageGraph

_URL = re.compile(
    r"https?://(?:\[[^\]]+\]|[^/\s'\"\[:]+)(?::(?P<port>[0-9]{1,5}))?(?P<path>/[^\s'\"?#;|&)]*)?"
)
_PORT_SPEC = re.compile(r"^(?P<port>[0-9]{1,5})(?:/(?:tcp|udp|sctp))?$", re.IGNORECASE)


class ServiceFact(NamedTuple):
    key: str  # service.<key>
    value: int | str
    source: str  # the instruction that says it: "Dockerfile:12 EXPOSE 80"


def service_facts(graph: StageGraph, target: int) -> list[ServiceFact]:
    """``port``, ``ready_path`` and ``live_path`` where the target's instructions say them."""
    chain = [graph.stages[target]]
    while chain[-1].parent is not None:
        parent = chain[-1].parent
        assert parent is not None
        chain.append(graph.stages[parent])
    chain.reverse()
    scope: dict[str, str | None] = dict(graph.global_args)
    env_port: ServiceFact | None = None
    exposed: ServiceFact | None = None
    health: tuple[str, str | None, str] | None = None  # (path, port, source)
    for stage in chain:
        for ins in stage.instructions[1:]:
            where = f"{graph.source}:{ins.line} {_short(ins)}"
            if ins.cmd == "ARG":
                for arg in ins.args:
                    name, eq, value = arg.partition("=")
                    scope[name] = expand(value, scope) if eq else scope.get(name)
            elif ins.cmd == "ENV":
                pairs = list(ins.args)
                for i in range(0, len(pairs) - 1, 2):
                    scope[pairs[i]] = expand(pairs[i + 1].strip("\"'"), scope)
                    if pairs[i] == "PORT":
                        number = _port(scope[pairs[i]] or "")
                        env_port = None if number is None else ServiceFact("port", number, where)
            elif ins.cmd == "EXPOSE":
                ports = [_port(expand(spec, scope)) for spec in ins.args]
                first = next((p for p in ports if p is not None), None)
                if first is not None:
                    exposed = ServiceFact("port", first, where)
            elif ins.cmd == "HEALTHCHECK":
                health = _health_url(ins, scope, where)
    facts: list[ServiceFact] = []
    port = env_port or exposed
    if port is None and health is not None and health[1] is not None:
        port = ServiceFact("port", int(health[1]), health[2])
    if port is not None:
        facts.append(port)
    if health is not None and health[0] != "/":
        facts.append(ServiceFact("ready_path", health[0], health[2]))
        facts.append(ServiceFact("live_path", health[0], health[2]))
    return facts


def _port(text: str) -> int | None:
    match = _PORT_SPEC.match(text.strip())
    if match is None:
        return None
    port = int(match.group("port"))
    return port if 1 <= port <= 65535 else None


def _health_url(
    ins: Instruction, scope: dict[str, str | None], where: str
) -> tuple[str, str | None, str] | None:
    """The path (and port) a ``HEALTHCHECK CMD`` asks for; None for ``NONE`` or no URL."""
    if not ins.args or ins.args[0].upper() != "CMD":
        return None
    command = expand(" ".join(ins.args[1:]), scope)
    match = _URL.search(command)
    if match is None:
        return None
    return match.group("path") or "/", match.group("port"), where


def _short(ins: Instruction) -> str:
    text = " ".join(ins.original.split())
    return text if len(text) <= 60 else text[:57] + "..."
