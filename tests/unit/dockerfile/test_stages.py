"""The stage graph: what BuildKit's parser leaves to the caller, checked case by case."""

from __future__ import annotations

import pytest

from pipeline_kit.dockerfile.expand import expand
from pipeline_kit.dockerfile.stages import parse_dockerfile
from pipeline_kit.errors import InputError


@pytest.mark.parametrize(
    ("text", "scope", "expected"),
    [
        ("$A/${B}", {"A": "x", "B": "y"}, "x/y"),
        ("${A:-dflt}", {"A": ""}, "dflt"),
        ("${A-dflt}", {"A": ""}, ""),
        ("${A:+alt}", {"A": "set"}, "alt"),
        ("${A+alt}", {}, ""),
        ("${MISSING}", {}, ""),
        ("\\$A", {"A": "x"}, "$A"),
        ("${A:-${B}}", {"B": "nested"}, "nested"),
    ],
)
def test_expand(text: str, scope: dict[str, str], expected: str) -> None:
    assert expand(text, scope) == expected


def test_args_before_from_and_build_arg_overrides() -> None:
    text = (
        "ARG REGISTRY=docker.io\nARG TAG=3.11\n"
        "FROM ${REGISTRY}/python:${TAG}-slim AS base\n"
        "ARG TAG\nRUN echo $TAG\n"
        "FROM base AS code\nARG TAG\n"
    )
    graph = parse_dockerfile(text)
    base, code = graph.stages
    assert base.from_ref == "docker.io/python:3.11-slim"
    assert base.from_args == (("REGISTRY", "docker.io"), ("TAG", "3.11"))
    assert base.args == (("TAG", "3.11"),)  # redeclared: takes the global default
    assert code.parent == 0 and code.from_image is None
    overridden = parse_dockerfile(text, build_args={"TAG": "3.12"})
    assert overridden.stages[0].from_ref == "docker.io/python:3.12-slim"
    assert overridden.stages[1].args == (("TAG", "3.12"),)


def test_aliases_are_case_insensitive_and_copy_from_by_index_or_image() -> None:
    graph = parse_dockerfile(
        "FROM alpine AS Builder\nRUN true\n"
        "FROM alpine\nCOPY --from=builder /a /a\nCOPY --from=0 /b /b\n"
        "COPY --from=nginx:1.27 /etc/nginx /etc/nginx\n"
    )
    final = graph.stages[1]
    assert graph.stages[0].name == "builder"
    assert [ref.stage for ref in final.stage_refs] == [0, 0]
    assert final.image_refs == ("nginx:1.27",)
    assert graph.find("BUILDER") is graph.stages[0]
    assert graph.find("1") is final
    assert final.label == "1"


def test_context_sources_heredocs_mounts_and_remote_add() -> None:
    graph = parse_dockerfile(
        "FROM python:3.11 AS code\n"
        "COPY ./app/ /app/\n"
        "COPY ['conf/*.yaml', 'extra.txt', '/etc/app/']\n".replace("'", '"')
        + "COPY <<EOF /etc/motd\nhello\nEOF\n"
        "ADD https://example.com/x.tgz /tmp/\n"
        "ADD /vendor//lib.tar /opt/\n"
        "RUN --mount=type=bind,source=requirements.txt,target=/r.txt "
        "--mount=type=cache,target=/root/.cache --mount=type=secret,id=tok pip install -r /r.txt\n"
        "RUN --mount=type=bind,target=/src make -C /src\n"
    )
    stage = graph.stages[0]
    assert [(s.path, s.via) for s in stage.sources] == [
        ("app", "COPY"),
        ("conf/*.yaml", "COPY"),
        ("extra.txt", "COPY"),
        ("vendor/lib.tar", "ADD"),
        ("requirements.txt", "RUN --mount"),
        (".", "RUN --mount"),
    ]
    assert stage.sources[1].has_glob
    assert stage.remote_sources == ("https://example.com/x.tgz",)
    heredoc = stage.instructions[3]
    assert heredoc.heredocs == ("hello\n",)
    assert "hello" in heredoc.normalized()


def test_env_and_user_carry_into_child_stages() -> None:
    graph = parse_dockerfile(
        "FROM python:3.11 AS base\nENV APP=/srv PORT=8000\nUSER app\n"
        "FROM base AS code\nENV DATA=${APP}/data\nCOPY . ${APP}/\n"
    )
    code = graph.stages[1]
    assert dict(code.env) == {"APP": "/srv", "PORT": "8000", "DATA": "/srv/data"}
    assert code.user == "app"


def test_normalized_instructions_ignore_layout() -> None:
    one = parse_dockerfile("FROM a\nRUN apt-get update && \\\n    apt-get install -y x\n")
    two = parse_dockerfile("FROM a\n# comment\n\nRUN apt-get update &&     apt-get install -y x\n")
    assert [i.normalized() for i in one.stages[0].instructions] == [
        i.normalized() for i in two.stages[0].instructions
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no instructions"),
        ("ARG A=1\n", "no FROM instruction"),
        ("RUN true\nFROM a\n", "Dockerfile:1: RUN before the first FROM"),
        ("FROM\n", "Dockerfile:1: FROM needs an image"),
        ("ARG IMG\nFROM ${IMG}\n", "expands to an empty image name"),
        ("FROM a AS 1bad\n", "invalid stage name '1bad'"),
        ("FROM a AS x\nCOPY --from=x /a /b\n", "refers to its own stage 'x'"),
        ("FROM a\nCOPY --from=3 /a /b\n", "refers to stage 3, which is not before it"),
        ("FROM a\nCOPY ../secret /x\n", "is outside the build context"),
        (
            "FROM a AS one\nCOPY --from=two /a /a\nFROM a AS two\nCOPY --from=one /b /b\n",
            "stages refer to each other in a loop",
        ),
    ],
)
def test_invalid_dockerfiles(text: str, message: str) -> None:
    with pytest.raises(InputError) as info:
        parse_dockerfile(text)
    assert message in str(info.value)


def test_target_and_upstream() -> None:
    graph = parse_dockerfile(
        "FROM a AS base\nFROM base AS deps\nFROM a AS tools\n"
        "FROM deps AS code\nCOPY --from=tools /t /t\nFROM a AS unused\n"
    )
    code = graph.target("code")
    assert [graph.stages[i].label for i in graph.upstream(code.index)] == [
        "base",
        "deps",
        "tools",
        "code",
    ]
    with pytest.raises(InputError, match="target stage 'nope' is not defined"):
        graph.target("nope")
