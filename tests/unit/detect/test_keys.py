"""Content-key sensitivity: each change moves exactly the keys it must, and no other.

One service in a real git repository; each case commits one change on top of it (or builds
with other build args) and compares, before and after, the key of every stage
(``stage_keys``) and the three keys of every instruction of the target's FROM chain
(``chain_keys``): ``own`` (what the instruction does, content included), ``effect`` (the
same without the content of the context paths) and ``cumulative`` (``own`` chained from the
start, which decides how much of a previous image append may keep).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline_kit.adapters.git import Git
from pipeline_kit.detect.keys import ChainKeys, chain_keys, from_chain, stage_keys
from pipeline_kit.dockerfile.context_tree import ContextSnapshot
from pipeline_kit.dockerfile.dockerignore import DockerIgnore
from pipeline_kit.dockerfile.stages import parse_dockerfile
from tests.support.gitrepo import GitRepo

DOCKERFILE = """\
ARG TAG=1
FROM scratch AS base
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]

FROM base AS deps
ARG INDEX=https://pypi.example/simple
ARG TAG
COPY requirements.txt /deps/requirements.txt
RUN pip install --index-url "$INDEX" -r /deps/requirements.txt && echo "$TAG" > /deps/tag

FROM scratch AS docs
COPY docs/ /docs/

FROM deps AS code
SHELL ["/bin/sh", "-c"]
ENV MODE=v1
WORKDIR /srv
COPY app/ app/
COPY run.sh /usr/local/bin/run.sh
USER 10001
COPY conf/ conf/
RUN echo "$MODE" > /srv/mode
COPY --from=docs /docs /srv/docs
CMD ["run.sh"]
"""

FILES = {
    "Dockerfile": DOCKERFILE,
    ".dockerignore": "notes/\n",
    "busybox": "not really busybox\n",
    "requirements.txt": "numpy==2.1.3\n",
    "docs/index.md": "# docs\n",
    "app/main.py": "print('v1')\n",
    "app/secret.txt": "kept out by a later .dockerignore\n",
    "app/lib/a.py": "A = 1\n",
    "app/lib/b.py": "B = 1\n",
    "scripts/run-v1.sh": "#!/bin/sh\necho v1\n",
    "scripts/run-v2.sh": "#!/bin/sh\necho v2\n",
    "conf/a.ini": "[a]\n",
    "notes/todo.txt": "later\n",
    "README.md": "# svc\n",
}

# The instructions of the chain base -> deps -> code, FROMs left out, by how each begins.
CHAIN = [
    "COPY busybox",
    'RUN ["/bin/busybox"',
    "ARG INDEX",
    "ARG TAG",
    "COPY requirements.txt",
    "RUN pip",
    "SHELL",
    "ENV MODE",
    "WORKDIR",
    "COPY app/",
    "COPY run.sh",
    "USER",
    "COPY conf/",
    'RUN echo "$MODE"',
    "COPY --from=docs",
    "CMD",
]


@dataclass(frozen=True)
class Keys:
    stages: dict[str, str]  # stage label -> stage key
    chain: ChainKeys


def keys_at(
    repo: GitRepo, build_args: Mapping[str, str] | None = None, inputs: tuple[str, ...] = ()
) -> Keys:
    """Every key of the service at HEAD, as detect computes them."""
    args = dict(build_args or {})
    git = Git(repo.path)
    try:
        head = repo.head()
        text = git.read_blob(head, "Dockerfile")
        ignore_text = git.read_blob(head, ".dockerignore")
        assert text is not None and ignore_text is not None
        graph = parse_dockerfile(text.decode(), build_args=args)
        ignore = DockerIgnore.parse(ignore_text.decode())
        snapshot = ContextSnapshot(git, git.tree_of(head), ignore)
        by_index = stage_keys(graph, snapshot, inputs)
        target = graph.target().index
        chain = chain_keys(graph, target, snapshot, by_index, args, inputs)
    finally:
        git.close()
    return Keys({stage.label: by_index[stage.index] for stage in graph.stages}, chain)


def _position(instruction: str) -> int:
    return CHAIN.index(instruction)


def _edit(old: str, new: str) -> Callable[[GitRepo], None]:
    def edit(repo: GitRepo) -> None:
        text = (repo.path / "Dockerfile").read_text()
        assert text.count(old) == 1, old
        repo.write({"Dockerfile": text.replace(old, new)})

    return edit


def _chmod(path: str, mode: int) -> Callable[[GitRepo], None]:
    return lambda repo: (repo.path / path).chmod(mode)


def _symlink(path: str, target: str) -> Callable[[GitRepo], None]:
    def relink(repo: GitRepo) -> None:
        link = repo.path / path
        link.unlink(missing_ok=True)
        link.symlink_to(target)

    return relink


def _write(files: Mapping[str, str | None]) -> Callable[[GitRepo], None]:
    return lambda repo: repo.write(files)


@dataclass(frozen=True)
class Case:
    change: Callable[[GitRepo], None]
    stages: set[str]  # the stages whose key changes
    own: set[str]  # the chain instructions whose own key changes
    effect: set[str]  # ... and whose effect key changes
    build_args: Mapping[str, str] | None = None  # built with these after the change


CODE = {"code"}
COPIES_AFTER_WORKDIR = {"COPY app/", "COPY run.sh", "COPY conf/", 'RUN echo "$MODE"'}

CASES: dict[str, Case] = {
    "an ENV used by a later RUN": Case(
        _edit("ENV MODE=v1", "ENV MODE=v2"),
        CODE,
        own={"ENV MODE", 'RUN echo "$MODE"'},
        effect={"ENV MODE", 'RUN echo "$MODE"'},
    ),
    "a WORKDIR before COPYs with relative destinations": Case(
        _edit("WORKDIR /srv", "WORKDIR /opt"),
        CODE,
        own={"WORKDIR", *COPIES_AFTER_WORKDIR, "COPY --from=docs"},
        effect={"WORKDIR", *COPIES_AFTER_WORKDIR, "COPY --from=docs"},
    ),
    "a build-arg override": Case(
        lambda repo: None,
        {"deps", "code"},
        own={"RUN pip"},
        effect={"RUN pip"},
        build_args={"INDEX": "https://mirror.example/simple"},
    ),
    "a global ARG's default, used in a stage": Case(
        _edit("ARG TAG=1", "ARG TAG=2"),
        {"deps", "code"},
        own={"RUN pip"},
        effect={"RUN pip"},
    ),
    "a build arg the Dockerfile does not declare": Case(
        lambda repo: None, set(), own=set(), effect=set(), build_args={"OTHER": "x"}
    ),
    "a USER change": Case(
        _edit("USER 10001", "USER 10002"),
        CODE,
        own={"USER", "COPY conf/", 'RUN echo "$MODE"', "COPY --from=docs"},
        effect={"USER", "COPY conf/", 'RUN echo "$MODE"', "COPY --from=docs"},
    ),
    # A later RUN's own key does not name the shell: its cumulative key changes with the
    # SHELL's, so append never replays it, and no previous layer is matched by own alone.
    "a SHELL change": Case(
        _edit('SHELL ["/bin/sh", "-c"]', 'SHELL ["/bin/sh", "-ec"]'),
        CODE,
        own={"SHELL"},
        effect={"SHELL"},
    ),
    "a .dockerignore rule that excludes a copied file": Case(
        _write({".dockerignore": "notes/\napp/secret.txt\n"}), CODE, own={"COPY app/"}, effect=set()
    ),
    "a .dockerignore rule that excludes nothing copied": Case(
        _write({".dockerignore": "notes/\n*.md\n!docs/\n!docs/**\n"}),
        set(),
        own=set(),
        effect=set(),
    ),
    "chmod +x of a copied file": Case(
        _chmod("app/main.py", 0o755), CODE, own={"COPY app/"}, effect=set()
    ),
    "the target of a copied symlink": Case(
        _symlink("run.sh", "scripts/run-v2.sh"), CODE, own={"COPY run.sh"}, effect=set()
    ),
    "the target of a symlink inside a copied directory": Case(
        _symlink("app/lib/current.py", "b.py"), CODE, own={"COPY app/"}, effect=set()
    ),
    "the content of a copied file": Case(
        _write({"requirements.txt": "numpy==2.2.0\n"}),
        {"deps", "code"},
        own={"COPY requirements.txt"},
        effect=set(),
    ),
    "a file of a stage copied from": Case(
        _write({"docs/index.md": "# docs v2\n"}),
        {"docs", "code"},
        own={"COPY --from=docs"},
        effect={"COPY --from=docs"},
    ),
    "a file nothing copies, and an excluded one": Case(
        _write({"README.md": "# svc v2\n", "notes/todo.txt": "now\n"}),
        set(),
        own=set(),
        effect=set(),
    ),
    "comments and line breaks in the Dockerfile": Case(
        _edit("COPY conf/ conf/\n", "# configuration\nCOPY \\\n    conf/ conf/\n"),
        set(),
        own=set(),
        effect=set(),
    ),
}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> tuple[GitRepo, str, Keys]:
    repo = GitRepo.init(tmp_path_factory.mktemp("keys") / "svc")
    repo.write(FILES)
    (repo.path / "run.sh").symlink_to("scripts/run-v1.sh")
    (repo.path / "app/lib/current.py").symlink_to("a.py")
    start = repo.commit(message="service")
    return repo, start, keys_at(repo)


def _changed(before: Keys, after: Keys) -> tuple[set[str], set[str], set[str], list[bool]]:
    assert list(before.stages) == list(after.stages)
    stages = {label for label in before.stages if before.stages[label] != after.stages[label]}
    pairs = list(zip(before.chain.instructions, after.chain.instructions, strict=True))
    own = {CHAIN[b.position] for b, a in pairs if b.own != a.own}
    effect = {CHAIN[b.position] for b, a in pairs if b.effect != a.effect}
    cumulative = [b.cumulative != a.cumulative for b, a in pairs]
    return stages, own, effect, cumulative


def test_the_chain_is_what_the_table_names(service: tuple[GitRepo, str, Keys]) -> None:
    _, _, keys = service
    assert list(keys.stages) == ["base", "deps", "docs", "code"]
    for key, prefix in zip(keys.chain.instructions, CHAIN, strict=True):
        assert key.instruction.original.startswith(prefix), (key.instruction.original, prefix)
    assert [k.stage for k in keys.chain.instructions] == [0, 0, 1, 1, 1, 1] + [3] * 10
    assert keys.chain.from_ref == "scratch"
    # The Dockerfile's own global ARG (the builder may add its platform ARGs around it).
    assert [(n, v) for n, v in keys.chain.global_args if n == "TAG"] == [("TAG", "1")]


@pytest.mark.parametrize("name", list(CASES))
def test_a_change_moves_exactly_its_keys(service: tuple[GitRepo, str, Keys], name: str) -> None:
    repo, start, before = service
    case = CASES[name]
    repo.git("checkout", "-q", "-B", f"case-{list(CASES).index(name)}", start)
    case.change(repo)
    repo.commit(message=name)
    after = keys_at(repo, case.build_args)
    stages, own, effect, cumulative = _changed(before, after)
    assert stages == case.stages
    assert own == case.own
    assert effect == case.effect
    assert after.chain.start == before.chain.start
    # The cumulative key changes from the first instruction whose own key does, never before.
    first = min((_position(i) for i in case.own), default=len(CHAIN))
    assert cumulative == [position >= first for position in range(len(CHAIN))]
    # The image is named by the target's key: it changes exactly when the code stage's does.
    assert (before.stages["code"] != after.stages["code"]) == ("code" in case.stages)


def test_build_inputs_change_every_key_but_no_instruction(
    service: tuple[GitRepo, str, Keys],
) -> None:
    """A host mount makes other RUN results: nothing is shared with a build made without."""
    repo, start, before = service
    repo.git("checkout", "-q", "-B", "inputs", start)
    after = keys_at(repo, inputs=("volume /etc/pip.conf:/etc/pip.conf:ro",))
    stages, own, effect, cumulative = _changed(before, after)
    assert stages == {"base", "deps", "docs", "code"}
    # Only the instruction that names another stage's key (the stage was built with them too).
    assert (own, effect) == ({"COPY --from=docs"}, {"COPY --from=docs"})
    assert after.chain.start != before.chain.start
    assert cumulative == [True] * len(CHAIN)
    again = keys_at(repo, inputs=("volume /etc/pip.conf:/etc/pip.conf:ro",))
    assert again == after  # the same inputs, the same keys


def test_from_chain_follows_parents_to_the_first_stage(
    service: tuple[GitRepo, str, Keys],
) -> None:
    graph = parse_dockerfile(DOCKERFILE)
    assert [s.label for s in from_chain(graph, 3)] == ["base", "deps", "code"]
    assert [s.label for s in from_chain(graph, 2)] == ["docs"]
    assert [s.label for s in from_chain(graph, 0)] == ["base"]


def test_a_stage_from_an_image_names_the_image_and_its_args(tmp_path: Path) -> None:
    repo = GitRepo.init(tmp_path / "img")
    dockerfile = "ARG V=3.11\nFROM python:${V}-slim AS app\nCOPY a.txt /a.txt\n"
    repo.commit({"Dockerfile": dockerfile, ".dockerignore": "", "a.txt": "a\n"})
    first = keys_at(repo)
    assert first.chain.from_ref == "python:3.11-slim"
    other = keys_at(repo, {"V": "3.12"})
    assert other.chain.from_ref == "python:3.12-slim"
    assert other.chain.start != first.chain.start
    assert other.stages["app"] != first.stages["app"]
    # Same image, same instruction: only the start (and so every cumulative key) differs.
    assert [k.own for k in other.chain.instructions] == [k.own for k in first.chain.instructions]
    assert other.chain.instructions[0].cumulative != first.chain.instructions[0].cumulative


def test_images_and_urls_a_stage_takes_are_in_its_key(tmp_path: Path) -> None:
    repo = GitRepo.init(tmp_path / "ext")
    dockerfile = (
        "FROM scratch AS app\n"
        "COPY --from=alpine:3.20 /etc/os-release /os-release\n"
        "ADD https://models.example.invalid/w.bin /w.bin\n"
    )
    repo.commit({"Dockerfile": dockerfile, ".dockerignore": ""})
    first = keys_at(repo)
    repo.commit({"Dockerfile": dockerfile.replace("alpine:3.20", "alpine:3.21")})
    other_image = keys_at(repo)
    repo.commit({"Dockerfile": dockerfile.replace("w.bin /", "w2.bin /")})
    other_url = keys_at(repo)
    assert len({first.stages["app"], other_image.stages["app"], other_url.stages["app"]}) == 3
    assert _changed(first, other_image)[1:3] == ({"COPY busybox"}, {"COPY busybox"})


def test_each_build_arg_value_has_its_own_keys(service: tuple[GitRepo, str, Keys]) -> None:
    repo, start, before = service
    repo.git("checkout", "-q", "-B", "args", start)
    one = keys_at(repo, {"INDEX": "https://one.example/simple"})
    two = keys_at(repo, {"INDEX": "https://two.example/simple"})
    stages, own, effect, _ = _changed(one, two)
    assert (stages, own, effect) == ({"deps", "code"}, {"RUN pip"}, {"RUN pip"})
    # The default, given as an override, is the default.
    default = keys_at(repo, {"INDEX": "https://pypi.example/simple"})
    assert default == before
