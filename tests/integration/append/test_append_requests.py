"""The requests of a code-only append, counted at a proxy in front of a real registry.

A registry CI jobs push to is one or more network round trips away, so an append's time
there is mostly the round trips it waits for one after another. The service is built once by
buildah (``--strategy builder``), then a code change that brings a package's metadata is
appended; the tests' proxy (tests/support/services/fault_proxy.py, no faults) logs every
request of the append. The registry is distribution 2.x: no referrers API, so attestations
are listed under the referrers tag ``sha256-<hex>``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline_kit.adapters.registry.client import IN_FLIGHT, RegistryClient
from tests.support.builds import TWO_STAGES, busybox_repo
from tests.support.gitrepo import GitRepo, cli
from tests.support.services.fault_proxy import Answer, FaultProxy, Rule
from tests.support.services.registry import RegistryServer

WAIT_S = 20.0  # how long the image's manifest PUT is held for the attestations' first steps
EMPTY_CONFIG = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"  # {}

METADATA = "app/site-packages/tinyvendor-2.0.dist-info/METADATA"


@pytest.fixture
def front(registry: RegistryServer) -> Iterator[FaultProxy]:
    proxy = FaultProxy(registry.port, rate=0.0).start()
    yield proxy
    proxy.stop()


def build(repo: GitRepo, *args: str) -> dict[str, Any]:
    config = list(args[:2]) if args[:1] == ("--config",) else []
    result = cli(*config, "build", *args[len(config) :], "--format", "json", cwd=repo.path,
                 timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    record: dict[str, Any] = json.loads(result.stdout)
    return record


def service(tmp_path: Path, registry: RegistryServer, front: FaultProxy, name: str) -> GitRepo:
    """The two-stage busybox service: ``ci/builder.yaml`` builds it with buildah straight to
    the registry (buildah streams its uploads, which the proxy does not pass on), the
    default config appends through the proxy."""
    storage = tmp_path / "storage"
    return busybox_repo(
        tmp_path / "repo",
        {
            "Dockerfile": TWO_STAGES,
            "app/main.txt": "v1\n",
            "ci/builder.yaml": (
                f"image: {registry.host}/{name}\ndockerfile: ../Dockerfile\ncontext: ..\n"
                "build:\n"
                f"  builder: buildah\n  buildah: {{storage_driver: vfs, root: {storage}/root, "
                f"runroot: {storage}/run}}\n"
            ),
            "pipeline-kit.yaml": f"image: {front.host}/{name}\n",
        },
    )


def test_an_append_asks_each_thing_once_and_reads_its_parents_sbom_while_it_publishes(
    tmp_path: Path, registry: RegistryServer, front: FaultProxy
) -> None:
    """The append PUTs its manifest by digest once, asks for the referrers API once, reads
    no layer it uploaded or read already (the new layer, the one it replaced) for the SBOM,
    and never reads back its own manifest (it wrote it). Beside its lookup it opens the
    connections its widest round will want (the proxy holds those ``GET /v2/`` until all
    have arrived, as a registry a round trip away would): the tags and the attestations'
    manifests go on connections already open. The layer it replaces is read
    beside the previous image's config, and so is the parent's SBOM (the proxy holds the
    config's answer until both reads arrive); the upload sessions for the statements' blobs
    are opened before the parent's SBOM has come. Its attestations are made while the
    image is published: the proxy holds the answer to the image's manifest PUT until the
    parent's referrers have been asked for and the attestations' blobs have started going up
    (the old order, publish and then attest, would keep it waiting ``WAIT_S`` and fail the
    test); their manifests go up only once the image's is in (GitLab's registry refused a
    referrer before its subject). The SBOM still extends the parent's with the new
    package."""
    repo = service(tmp_path, registry, front, "requests/svc")
    parent = build(repo, "--config", "ci/builder.yaml", "--strategy", "builder")
    assert parent["attestations"]["attached"] == ["provenance", "sbom"]

    parent_hex = parent["digest"].removeprefix("sha256:")
    client = RegistryClient(registry.host)
    before = json.loads(client.get_manifest("requests/svc", parent["digest"]).raw)
    replaced = [layer["digest"] for layer in before["layers"]][-1:]
    parent_asked, attesting, layer_asked = threading.Event(), threading.Event(), threading.Event()
    held: list[tuple[bool, bool]] = []
    config_held: list[bool] = []

    def noted(event: threading.Event) -> Callable[[Answer], Answer]:
        def note(answer: Answer) -> Answer:
            event.set()
            return answer

        return note

    def hold_manifest(answer: Answer) -> Answer:
        held.append((parent_asked.wait(WAIT_S), attesting.wait(WAIT_S)))
        return answer

    opened: list[int] = []
    all_open, sessions_open = threading.Event(), threading.Event()
    sessions: list[int] = []
    parent_sbom_held: list[bool] = []
    sbom_manifest = json.loads(
        client.get_manifest("requests/svc", parent["attestations"]["sbom"]).raw
    )

    def note_session(answer: Answer) -> Answer:
        sessions.append(1)
        if len(sessions) >= 3:  # the config's, and one per statement
            sessions_open.set()
        return answer

    def hold_parent_sbom(answer: Answer) -> Answer:
        parent_sbom_held.append(sessions_open.wait(WAIT_S))
        return answer

    def hold_until_all_open(answer: Answer) -> Answer:  # as a registry a round trip away
        opened.append(1)
        if len(opened) >= IN_FLIGHT:
            all_open.set()
        all_open.wait(WAIT_S)
        return answer

    def hold_config(answer: Answer) -> Answer:
        config_held.append(layer_asked.wait(WAIT_S) and parent_asked.wait(WAIT_S))
        return answer

    parent_sbom = rf"/(referrers/sha256:{parent_hex}|manifests/sha256-{parent_hex})$"
    front.rules += [
        Rule("GET", parent_sbom, alter=noted(parent_asked), times=None),
        Rule("POST", rf"/blobs/uploads/\?mount={EMPTY_CONFIG}", alter=noted(attesting), times=None),
        Rule("PUT", r"/manifests/sha256:[0-9a-f]{64}$", alter=hold_manifest, times=1),
        Rule("GET", "^/v2/$", alter=hold_until_all_open, times=None),
        Rule("POST", "/blobs/uploads/$", alter=note_session, times=None),
        Rule("GET", f"/blobs/{sbom_manifest['layers'][0]['digest']}$", alter=hold_parent_sbom),
        Rule("GET", f"/blobs/{replaced[0]}$", alter=noted(layer_asked), times=None),
        Rule("GET", f"/blobs/{before['config']['digest']}$", alter=hold_config, times=1),
    ]
    front.log.clear()
    repo.commit(
        {
            "app/main.txt": "v2\n",
            METADATA: "Metadata-Version: 2.1\nName: tinyvendor\nVersion: 2.0\n",
        }
    )
    appended = build(repo)
    assert appended["strategy"] == "append", appended.get("reason")
    digest = appended["digest"]
    assert held == [(True, True)], (
        "the image's manifest was answered before (parent's SBOM asked, attestations uploading)"
    )

    # The layer the append replaces, and the parent's SBOM, are read beside the previous
    # image's config, not after.
    assert config_held == [True], "the replaced layer or the SBOM asked for after the config"
    manifest = json.loads(client.get_manifest("requests/svc", digest).raw)
    new_layers = [layer["digest"] for layer in manifest["layers"]][-1:]
    assert new_layers != replaced

    assert [e.path for e in front.seen("PUT", f"/manifests/{digest}$")] == [
        f"/v2/requests/svc/manifests/{digest}"
    ]
    assert len(front.seen("GET", "/referrers/")) == 1
    # Without credentials there is no challenge to get ahead of: no warm-up's GET /v2/ while
    # the checkout is read, only those opening connections beside the lookup.
    assert len(front.seen("GET", "^/v2/$")) == IN_FLIGHT
    for layer in new_layers:
        assert not front.seen("GET", f"/blobs/{layer}$"), "the new layer was read back"
    for layer in replaced:
        assert len(front.seen("GET", f"/blobs/{layer}$")) <= 1, "the replaced layer read twice"
    # The attestations take the subject from the manifest the append wrote.
    assert not front.seen("GET", f"/manifests/{digest}$")

    summary = appended["attestations"]
    assert summary["attached"] == ["provenance", "sbom"]
    assert summary["sbom_from"] == f"requests/svc@{parent['digest']}"
    # The referrers tag is read beside the attestations' uploads, before their manifests go
    # up: after those, only the tag's own PUT is left, and it is the append's last request.
    requests = [(e.method, e.path.rsplit("/", 1)[-1]) for e in front.log]
    referrers_tag = f"sha256-{digest.removeprefix('sha256:')}"
    statements = [i for i, r in enumerate(requests) if r[0] == "PUT" and r[1] in (
        summary["provenance"], summary["sbom"])]  # fmt: skip
    tag_reads = [i for i, r in enumerate(requests) if r == ("GET", referrers_tag)]
    assert len(statements) == 2 and tag_reads and max(tag_reads) < min(statements), requests
    assert requests.index(("PUT", digest)) < min(statements), requests
    # The statements' blobs go into upload sessions opened before the parent's SBOM came
    # (the proxy holds it until they are): one request each once they are made, not two.
    assert parent_sbom_held == [True], "the upload sessions were opened after the parent's SBOM"
    for made in (summary["provenance"], summary["sbom"]):
        blob = json.loads(client.get_manifest("requests/svc", made).raw)["layers"][0]["digest"]
        assert not front.seen("POST", f"mount={blob}"), "a statement uploaded without a session"
    # The connections the tags and the statements go on were opened beside the lookup.
    put_at = requests.index(("PUT", digest))
    opened_first = {e.connection for e in front.log[:put_at]}
    assert {e.connection for e in front.log[put_at:]} <= opened_first, "a connection opened late"
    assert requests[-1] == ("PUT", referrers_tag), requests
    sbom_entry = [
        e
        for e in json.loads(client.get_manifest("requests/svc", f"sha256-{digest[7:]}").raw)[
            "manifests"
        ]
        if e["digest"] == summary["sbom"]
    ]
    assert sbom_entry
    sbom_manifest = json.loads(client.get_manifest("requests/svc", summary["sbom"]).raw)
    document = json.loads(client.get_blob("requests/svc", sbom_manifest["layers"][0]["digest"]))
    versions = {p["name"]: p.get("versionInfo") for p in document["predicate"]["packages"]}
    assert versions.get("tinyvendor") == "2.0", versions


def test_an_append_whose_image_is_refused_fails_with_that_and_attaches_nothing(
    tmp_path: Path, registry: RegistryServer, front: FaultProxy
) -> None:
    """The attestations wait for the image's manifest to be in. When the registry refuses it
    (the proxy answers 400 to the manifest PUT by digest, once the attestations' uploads
    have begun), the build fails with that refusal, at once (the attestations stop waiting,
    nothing hangs), and no artifact manifest or referrers tag is written for it."""
    repo = service(tmp_path, registry, front, "refused/svc")
    build(repo, "--config", "ci/builder.yaml", "--strategy", "builder")
    refusal = json.dumps({"errors": [{"code": "MANIFEST_INVALID", "message": "no thanks"}]})
    attesting = threading.Event()
    waited: list[bool] = []

    def note(answer: Answer) -> Answer:
        attesting.set()
        return answer

    def refuse(answer: Answer) -> Answer:  # once the attestations are under way
        waited.append(attesting.wait(WAIT_S))
        return Answer(400, {"Content-Type": "application/json"}, refusal.encode())

    front.rules += [
        Rule("POST", rf"/blobs/uploads/\?mount={EMPTY_CONFIG}", alter=note, times=None),
        Rule("PUT", r"/manifests/sha256:[0-9a-f]{64}$", alter=refuse, times=None),
    ]
    front.log.clear()
    repo.commit({"app/main.txt": "v2\n"})
    result = cli("build", "--format", "json", cwd=repo.path, timeout=120)
    assert result.returncode == 3, (result.returncode, result.stderr[-3000:])
    assert "no thanks" in result.stderr and "did not happen" not in result.stderr
    puts = [e.path for e in front.log if e.method == "PUT" and "/manifests/" in e.path]
    assert len(puts) == 1, puts  # the image's, refused; no tag, no artifact, no referrers tag
    assert waited == [True], "the attestations had not begun when the image was refused"
