"""Image configs buildah writes for small Dockerfiles, and the kit's replay of the same.

Each case is a Dockerfile (with, for some, a base image's config, build args and the labels the
kit adds) and the config fields buildah 1.28 writes for it (``buildah bud --layers``, then
``buildah inspect``, OCI format). tests/unit/append checks that append's config evaluation
gives these fields; tests/integration/append/test_golden_configs.py builds every case with
buildah and checks that buildah still gives exactly them, so the table cannot drift from the
builder it stands for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline_kit.append.image_config import DEFAULT_PATH, evaluate
from pipeline_kit.detect.keys import InstructionKey, from_chain
from pipeline_kit.dockerfile.stages import parse_dockerfile

# The fields of an image config a Dockerfile decides (buildah's own label is left out).
FIELDS = (
    "User",
    "ExposedPorts",
    "Env",
    "Entrypoint",
    "Cmd",
    "Volumes",
    "WorkingDir",
    "Labels",
    "StopSignal",
    "Healthcheck",
)
BUILDAH_LABEL = "io.buildah.version"


@dataclass(frozen=True)
class GoldenConfig:
    name: str
    dockerfile: str
    expected: Mapping[str, Any]  # the fields checked; None: the field is absent
    base: Mapping[str, Any] | None = None  # the config of the image FROM names (not scratch)
    labels: Mapping[str, str] = field(default_factory=dict)  # --label, as the kit passes them
    build_args: Mapping[str, str] = field(default_factory=dict)

    @property
    def base_reference(self) -> str | None:
        """The image the first FROM names, when it is not scratch."""
        graph = parse_dockerfile(self.dockerfile, build_args=dict(self.build_args))
        ref = graph.stages[0].from_ref
        return None if ref == "scratch" else ref


def chain(text: str, build_args: Mapping[str, str] | None = None) -> list[InstructionKey]:
    """The target's chain with placeholder keys (evaluation does not read them)."""
    graph = parse_dockerfile(text, build_args=dict(build_args or {}))
    keys = []
    for stage in from_chain(graph, len(graph.stages) - 1):
        for ins in stage.instructions[1:]:
            keys.append(InstructionKey(len(keys), stage.index, ins, "own", "effect", "cum"))
    return keys


def config_of(
    text: str,
    base: Mapping[str, Any] | None = None,
    labels: Mapping[str, str] | None = None,
    build_args: Mapping[str, str] | None = None,
    docker: bool = False,
) -> dict[str, Any]:
    """The config append computes for ``text`` on a base image of config ``base``."""
    graph = parse_dockerfile(text, build_args=dict(build_args or {}))
    evaluated = evaluate(
        {"config": dict(base)} if base is not None else None,
        chain(text, build_args),
        dict(graph.global_args),
        dict(build_args or {}),
        dict(labels or {}),
        docker_format=docker,
    )
    return evaluated.config


def fields_of(config: Mapping[str, Any], names: Any) -> dict[str, Any]:
    """``names`` of ``config``, empty values as None, buildah's version label left out."""
    out = {}
    for name in names:
        value = config.get(name) or None
        if name == "Labels" and value:
            value = {k: v for k, v in value.items() if k != BUILDAH_LABEL} or None
        out[name] = value
    return out


ENV_CASE = """\
FROM scratch
ENV A=1
ENV A=2 B=$A C="q $A" D='s $A' E=a\\ b F=${A:-x}y
ENV PATH=/p:$PATH
LABEL l1=$A "l 2"="v $B"
EXPOSE 8000/TCP 9000
USER ${A}
ENTRYPOINT echo ep
CMD ["x"]
"""

BASE_CONFIG = {
    "User": "7",
    "ExposedPorts": {"9000/tcp": {}},
    "Env": ["PATH=/custom/bin:/bin", "BASEV=1"],
    "Entrypoint": ["base-ep"],
    "Cmd": ["base-cmd"],
    "Volumes": {"/data": {}},
    "WorkingDir": "/basewd",
    "Labels": {"base.label": "yes", "shared": "base"},
    "StopSignal": "SIGINT",
}
ON_BASE = """\
ARG G=glob
FROM registry.example/base:1 AS base
ARG A1=one
ENV E1=$A1 E2=${BASEV}-x
LABEL shared=mine l2="${E1} sp"
FROM base AS code
ARG A2
ARG G
ENV FROMG=$G A2=$A2
ENTRYPOINT ["/bin/busybox", "echo"]
EXPOSE 8000/udp 8001
STOPSIGNAL SIGTERM
USER 0:0
CMD echo hi
"""

WORKDIRS = [
    (["a"], "/a"),
    (["a", "b/../c"], "/a/c"),
    (["a", "d/"], "/a/d"),
    (["/x/../y"], "/x/../y"),
    (["/x//y/"], "/x//y/"),
    (["a", "/"], "/"),
    (["$HOME"], "/"),
    (["a", "."], "/a"),
]

CASES: list[GoldenConfig] = [
    GoldenConfig(
        "ENV sees the values from before it, PATH comes first",
        ENV_CASE,
        {
            "Env": [
                f"PATH=/p:{DEFAULT_PATH}",
                "A=2",
                "B=1",
                "C=q 1",
                "D=s $A",
                "E=a b",
                "F=1y",
            ],
            "Labels": {"l1": "2", "l 2": "v 1", "kit": "1"},
            "ExposedPorts": {"8000/TCP": {}, "9000/tcp": {}},
            "User": "2",
            "Entrypoint": ["/bin/sh", "-c", "echo ep"],
            "Cmd": ["x"],
        },
        labels={"kit": "1"},
    ),
    *(
        GoldenConfig(
            f"WORKDIR {' then '.join(workdirs)}",
            "FROM scratch\n" + "".join(f"WORKDIR {w}\n" for w in workdirs),
            {"WorkingDir": expected},
        )
        for workdirs, expected in WORKDIRS
    ),
    GoldenConfig(
        "the base image's config carries over",
        ON_BASE,
        {
            "User": "0:0",
            "ExposedPorts": {"9000/tcp": {}, "8000/udp": {}, "8001/tcp": {}},
            "Env": ["PATH=/custom/bin:/bin", "BASEV=1", "E1=one", "E2=1-x", "FROMG=glob", "A2="],
            "Entrypoint": ["/bin/busybox", "echo"],
            "Cmd": ["/bin/sh", "-c", "echo hi"],
            "Volumes": {"/data": {}},
            "WorkingDir": "/basewd",
            "Labels": {"base.label": "yes", "shared": "mine", "l2": "one sp", "kit": "1"},
            "StopSignal": "SIGTERM",
        },
        base=BASE_CONFIG,
        labels={"kit": "1"},
    ),
    # ENTRYPOINT clears a CMD the stage did not set itself (here: the parent stage's).
    GoldenConfig(
        "ENTRYPOINT clears the parent stage's CMD",
        'FROM scratch AS a\nCMD ["a"]\nFROM a\nENTRYPOINT ["e"]\n',
        {"Cmd": None, "Entrypoint": ["e"]},
    ),
    GoldenConfig(
        "ENTRYPOINT keeps the stage's own CMD",
        'FROM scratch\nCMD ["a"]\nENTRYPOINT ["e"]\n',
        {"Cmd": ["a"], "Entrypoint": ["e"]},
    ),
    GoldenConfig(
        "CMD after ENTRYPOINT",
        'FROM scratch\nENTRYPOINT ["e"]\nCMD ["c"]\n',
        {"Cmd": ["c"], "Entrypoint": ["e"]},
    ),
    GoldenConfig(
        "a base without PATH gets the default after its variables, build args win",
        "FROM registry.example/b\nARG V=default\nENV V=$V\n",
        {"Env": ["ONLY=1", f"PATH={DEFAULT_PATH}", "V=given"]},
        base={"Env": ["ONLY=1"]},
        build_args={"V": "given"},
    ),
    GoldenConfig(
        "the kit's labels win over the Dockerfile's, HEALTHCHECK is dropped in OCI",
        'FROM scratch\nLABEL a=dockerfile\nHEALTHCHECK CMD ["true"]\n',
        {"Labels": {"a": "kit"}, "Healthcheck": None},
        labels={"a": "kit"},
    ),
]
