"""What the tools the kit starts inherit: everything but the kit's registry password, whichever
way they are started (run, stream, start_all, a git repository's cat-file)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline_kit.adapters.git import Git
from pipeline_kit.adapters.process import run, start_all, stream
from tests.support.gitrepo import GitRepo

PASSWORD = "pk-unit-password-5e1d"
SHOW = ["sh", "-c", 'echo "pw=${PIPELINE_KIT_REGISTRY_PASSWORD-unset} other=${OTHER-unset}"']
EXPECTED = "pw=unset other=kept"


@pytest.fixture(autouse=True)
def kit_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIPELINE_KIT_REGISTRY_PASSWORD", PASSWORD)
    monkeypatch.setenv("OTHER", "kept")


def test_run_withholds_the_password() -> None:
    assert run(SHOW).stdout.decode().strip() == EXPECTED
    assert run(SHOW, env={"EXTRA": "1"}).stdout.decode().strip() == EXPECTED


def test_a_caller_may_still_hand_it_on_explicitly() -> None:
    given = {"PIPELINE_KIT_REGISTRY_PASSWORD": "given"}
    assert run(SHOW, env=given).stdout.decode().strip() == "pw=given other=kept"


def test_stream_and_start_all_withhold_it() -> None:
    lines: list[str] = []
    code, _ = stream(SHOW, on_line=lines.append)
    assert (code, lines) == (0, [EXPECTED])
    [done] = start_all([SHOW])()
    assert done.stdout.decode().strip() == EXPECTED


def test_git_s_batch_process_does_not_get_it(tmp_path: Path) -> None:
    repo = GitRepo.init(tmp_path / "r")
    repo.commit({"a.txt": "a\n"})
    git = Git(repo.path)
    try:
        assert git.read_blob("HEAD", "a.txt") == b"a\n"
        assert git._batch is not None
        environ = Path(f"/proc/{git._batch.pid}/environ").read_bytes().split(b"\0")
        assert f"PIPELINE_KIT_REGISTRY_PASSWORD={PASSWORD}".encode() not in environ
        assert b"OTHER=kept" in environ
    finally:
        git.close()
