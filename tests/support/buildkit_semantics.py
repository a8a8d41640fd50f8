"""BuildKit's semantics beyond its parser, as tables: the automatic platform ARGs per
``--platform``, a Dockerfile that picks a stage per architecture, and which instructions
BuildKit refuses before building. tests/unit/dockerfile/test_buildkit_semantics.py checks the
kit against them; tests/integration/build/test_buildkit_semantics.py runs them through the
real BuildKit, which is where their truth comes from.
"""

from __future__ import annotations

# --platform as given -> (TARGETPLATFORM, TARGETOS, TARGETARCH, TARGETVARIANT), as BuildKit
# v0.32 set them.
PLATFORMS: dict[str, tuple[str, str, str, str]] = {
    "linux/amd64": ("linux/amd64", "linux", "amd64", ""),
    "linux/arm64": ("linux/arm64", "linux", "arm64", ""),
    "linux/arm": ("linux/arm/v7", "linux", "arm", "v7"),
    "linux/arm/v6": ("linux/arm/v6", "linux", "arm", "v6"),
    "linux/arm64/v8": ("linux/arm64", "linux", "arm64", ""),
    "aarch64": ("linux/arm64", "linux", "arm64", ""),
    "arm64": ("linux/arm64", "linux", "arm64", ""),
    "x86_64": ("linux/amd64", "linux", "amd64", ""),
    "linux/386": ("linux/386", "linux", "386", ""),
    "windows/amd64": ("windows/amd64", "windows", "amd64", ""),
    "Linux/AMD64": ("linux/amd64", "linux", "amd64", ""),
    "linux/riscv64": ("linux/riscv64", "linux", "riscv64", ""),
    "linux/amd64/v3": ("linux/amd64/v3", "linux", "amd64", "v3"),
}

# A stage per architecture, chosen through a global ARG whose default is an automatic ARG.
FLAVOURED = (
    "ARG FLAVOR=${TARGETARCH}\n"
    "FROM scratch AS base-amd64\nCOPY f /amd\n"
    "FROM scratch AS base-arm64\nCOPY f /arm\n"
    "FROM scratch AS base-arm\nCOPY f /arm32\n"
    "FROM scratch AS base-386\nCOPY f /i386\n"
    "FROM scratch AS base-riscv64\nCOPY f /riscv\n"
    "FROM base-${FLAVOR}\n"
    "ARG TARGETPLATFORM\nARG TARGETOS\nARG TARGETARCH\nARG TARGETVARIANT\nARG BUILDPLATFORM\n"
    "COPY f /tp/${TARGETPLATFORM}/os=${TARGETOS}/arch=${TARGETARCH}/v=${TARGETVARIANT}"
    "/b=${BUILDPLATFORM}\n"
)

# One line after `FROM scratch` -> whether BuildKit refuses the Dockerfile before building.
INSTRUCTIONS: dict[str, bool] = {
    "COPY --bogus f /x": True,
    "ADD --bogus f /x": True,
    "RUN --bogus true": True,
    "ENV --foo a=b": True,
    "WORKDIR --x /w": True,
    "FROM --bogus scratch": True,
    "ONBUILD --x RUN x": True,
    "ARG --chown=1 a": False,  # BuildKit reads no flags on ARG, and says nothing
    "STOPSIGNAL --chown=1 9": False,
    "COPY --from f /x": True,
    "COPY --exclude f /x": True,
    "COPY --from=a --from=b f /x": True,
    "COPY --exclude=a --exclude=b f /x": False,
    "COPY --link f /x": False,
    "COPY --link=false f /x": False,
    "COPY --link=TRUE f /x": False,
    "COPY --link=maybe f /x": True,
    "COPY --link= f /x": True,
    "COPY --parents --chmod=755 --chown=1:1 f /x": False,
    "ADD --link --keep-git-dir --unpack --exclude=x --chown=1 --chmod=644 f /x": False,
    "ONBUILD": True,
    "ONBUILD RUN --bogus x": False,  # a trigger is read where the image is used
    "ONBUILD FROM x": True,
    "ONBUILD ONBUILD RUN x": True,
    "ONBUILD MAINTAINER x": True,
    "ONBUILD RUN true": False,
    "HEALTHCHECK --interval=x CMD true": True,
    "HEALTHCHECK --interval=30 CMD true": True,
    "HEALTHCHECK --interval=30s --timeout=5s --start-period=1h30m --retries=3 CMD true": False,
    "HEALTHCHECK --start-interval=1.5s CMD true": False,
    "HEALTHCHECK --interval=0 CMD true": False,
    "HEALTHCHECK --interval=0.5ms CMD true": True,
    "HEALTHCHECK --interval=1ms CMD true": False,
    "HEALTHCHECK --timeout=-1s CMD true": True,
    "HEALTHCHECK --interval= CMD true": False,
    "HEALTHCHECK --retries=x CMD true": True,
    "HEALTHCHECK --retries=-1 CMD true": True,
    "HEALTHCHECK --retries=0 CMD true": False,
    "HEALTHCHECK --bogus=1 CMD true": True,
    "HEALTHCHECK FOO": True,
    "HEALTHCHECK cmd true": False,
    "HEALTHCHECK NONE": False,
    "HEALTHCHECK NONE x": True,
    "HEALTHCHECK CMD": True,
    "HEALTHCHECK": True,
    "RUN --network=none true": False,
    "RUN --network=bogus true": True,
    "RUN --security=bogus true": True,
    "RUN --mount=type=bogus true": True,
    "RUN --mount=type=tmpfs,target=/t --mount=type=cache,target=/c true": False,
    "ENV": True,
    "EXPOSE": True,
    "LABEL": True,
    "VOLUME": True,
    "ARG": True,
    "WORKDIR": True,
    "USER": True,
    "STOPSIGNAL": True,
    "MAINTAINER": True,
    "SHELL sh": True,
    "SHELL []": True,
    'SHELL ["/bin/sh", "-c"]': False,
    "CMD": False,
    "ENTRYPOINT": False,
}
