"""append takes detect's rebuild point: a change that starts before the last layer is refused
before the registry is asked anything; unknown history leaves the decision to provenance."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline_kit.adapters.git import Git
from pipeline_kit.append import CannotAppend
from pipeline_kit.append.attempt import refuse_before_the_last_layer
from pipeline_kit.ci.context import from_environ
from pipeline_kit.config.loader import load_config
from pipeline_kit.detect.changes import Detection, detect_changes
from pipeline_kit.detect.revisions import choose_range
from tests.support.gitrepo import GitRepo

DOCKERFILE = """\
FROM nvidia/cuda:12.4.1-runtime-ubuntu22.04
RUN apt-get update && apt-get install -y python3-pip
COPY requirements.txt .
RUN pip install -r requirements.txt
COPY server server
CMD ["python3", "-m", "server"]
"""


def _detection(repo: GitRepo, base: str) -> Detection:
    config = load_config(None, repo.path)
    with Git(repo.path) as git:
        rng = choose_range(git, from_environ({}), base=base, head="HEAD")
        return detect_changes(git, config, rng, with_chain=True)


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    repo = GitRepo.init(tmp_path / "svc")
    repo.commit({"Dockerfile": DOCKERFILE, "requirements.txt": "a==1\n", "server/x.py": "1\n"})
    return repo


def test_a_change_in_the_last_layer_passes(repo: GitRepo) -> None:
    base = repo.head()
    repo.commit({"server/x.py": "2\n"})
    detection = _detection(repo, base)
    assert detection.rebuild_point is not None and detection.rebuild_point.trailing
    refuse_before_the_last_layer(detection)  # no refusal


def test_a_change_before_it_is_refused_with_the_rebuild_point(repo: GitRepo) -> None:
    base = repo.head()
    repo.commit({"requirements.txt": "a==2\n", "server/x.py": "2\n"})
    with pytest.raises(CannotAppend) as refused:
        refuse_before_the_last_layer(_detection(repo, base))
    assert refused.value.reason == (
        "the change starts at Dockerfile:3 COPY requirements.txt ., in deps: only a change "
        "inside the last layer (code) can be appended"
    )


def test_unknown_history_is_left_to_the_previous_images_provenance(repo: GitRepo) -> None:
    repo.commit({"server/x.py": "2\n"})
    detection = _detection(repo, "0" * 40)
    assert detection.range.fail_safe is not None
    assert detection.rebuild_point is not None and not detection.rebuild_point.certain
    refuse_before_the_last_layer(detection)  # no refusal: the provenance decides


def test_the_images_below_the_code_range_are_recorded_by_content(repo: GitRepo) -> None:
    """One stage, so no stage key names what lies below the server: the instructions up to
    the code range do, the same for every server change, another for a requirements change."""
    from pipeline_kit.detect.records import on_tags

    first = repo.head()
    tags = on_tags(_detection(repo, first))
    assert len(tags) == 1 and tags[0].startswith("pk-on-")
    repo.commit({"server/x.py": "2\n", "server/y.py": "new\n"})
    assert on_tags(_detection(repo, first)) == tags
    repo.commit({"requirements.txt": "a==2\n"})
    assert on_tags(_detection(repo, first)) not in ([], tags)


def test_no_record_below_a_code_range_that_is_a_stage(tmp_path: Path) -> None:
    repo = GitRepo.init(tmp_path / "staged")
    repo.commit(
        {
            "Dockerfile": "FROM alpine:3.20 AS base\nRUN apk add python3\n"
            "FROM base AS code\nCOPY server server\n",
            "server/x.py": "1\n",
        }
    )
    detection = _detection(repo, repo.head())
    assert detection.append_base_key is None
    assert len(detection.chain_stages) == 2  # the base stage's key names what is below
