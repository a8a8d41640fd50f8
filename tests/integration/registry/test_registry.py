"""The registry client, push, promote and cache gc against a real docker-registry on loopback.

Anonymous, htpasswd basic auth and bearer tokens (from the tests' own token endpoint), and a
fault-injecting proxy. Test images are made of random blobs: the registry checks digests and
manifest references, not layer formats.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from pipeline_kit.adapters.registry.client import RegistryClient
from pipeline_kit.adapters.registry.credentials import (
    Credential,
    resolve_credential,
    write_docker_config,
)
from pipeline_kit.adapters.registry.references import ImageRef
from pipeline_kit.commands.cache_gc import CacheGcOptions
from pipeline_kit.commands.cache_gc import run as cache_gc
from pipeline_kit.errors import ConfigError, EnvironmentFault, ExitCode, InputError
from pipeline_kit.publish.layout import push_layout
from pipeline_kit.publish.retag import point_tags
from tests.support.ci_outputs import parse_dotenv
from tests.support.gitrepo import GitRepo, cli
from tests.support.layouts import client_for, digest_of, make_layout
from tests.support.services.fault_proxy import FaultProxy
from tests.support.services.registry import RegistryServer, running_registry
from tests.support.services.token_server import TokenServer

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


@pytest.fixture(scope="module")
def token_registry(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[RegistryServer, TokenServer]]:
    tokens = TokenServer(tmp_path_factory.mktemp("token"), "robot", "t0ken-pass").start()
    with running_registry(tmp_path_factory.mktemp("token-registry"), tokens.registry_auth()) as reg:
        yield reg, tokens
    tokens.stop()


# -- references and credentials ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        ("ubuntu", "docker.io", "library/ubuntu", None, None),
        ("nvidia/cuda:12.4.1-runtime", "docker.io", "nvidia/cuda", "12.4.1-runtime", None),
        ("127.0.0.1:5000/team/llm:sha-1", "127.0.0.1:5000", "team/llm", "sha-1", None),
        ("localhost/x@sha256:" + "a" * 64, "localhost", "x", None, "sha256:" + "a" * 64),
        (
            "ghcr.io/acme/llm:v1@sha256:" + "b" * 64,
            "ghcr.io",
            "acme/llm",
            "v1",
            "sha256:" + "b" * 64,
        ),
    ],
)
def test_image_references(
    text: str, registry: str, repository: str, tag: str | None, digest: str | None
) -> None:
    ref = ImageRef.parse(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (
        registry,
        repository,
        tag,
        digest,
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Team/LLM:x", "not a valid repository name"),
        ("team/llm:-bad", "not a valid tag"),
        ("team/llm@sha256:abc", "not a sha256 digest"),
    ],
)
def test_bad_references_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        ImageRef.parse(text)


def test_credentials_come_from_the_right_place(tmp_path: Path) -> None:
    assert resolve_credential(
        "ghcr.io", {"GITHUB_TOKEN": "gh", "GITHUB_ACTOR": "me"}
    ) == Credential("me", "gh", "GITHUB_TOKEN")
    env = {
        "CI_REGISTRY": "reg.gitlab.example",
        "CI_REGISTRY_USER": "ci",
        "CI_REGISTRY_PASSWORD": "p",
    }
    assert resolve_credential("reg.gitlab.example", env) == Credential(
        "ci", "p", "CI_REGISTRY_USER/CI_REGISTRY_PASSWORD"
    )
    assert resolve_credential("other.example", {**env, "HOME": str(tmp_path)}) is None
    docker = tmp_path / "docker"
    write_docker_config(docker, {"reg.example:5000": Credential("u", "s3cret")})
    found = resolve_credential("reg.example:5000", {"DOCKER_CONFIG": str(docker)})
    assert found is not None
    assert (found.username, found.password) == ("u", "s3cret")
    assert "s3cret" not in repr(found)
    assert (docker / "config.json").stat().st_mode & 0o777 == 0o600
    assert docker.stat().st_mode & 0o777 == 0o700


def test_a_netrc_machine_is_the_credential_of_its_host_alone(tmp_path: Path) -> None:
    """The last source, as curl reads it: the ``machine`` entry of the host's name (a netrc has
    no port). Its ``default`` entry is for any host, so a host a change names would get it: the
    kit never uses it. A file that cannot be read is named, not skipped."""
    netrc = tmp_path / "netrc"
    netrc.write_text("machine reg.example login nu password ns3cret\n"
                     "default login anyone password any-secret\n")  # fmt: skip
    netrc.chmod(0o600)
    environ = {"NETRC": str(netrc), "HOME": str(tmp_path)}
    found = resolve_credential("reg.example:5000", environ)
    assert found is not None and (found.username, found.password) == ("nu", "ns3cret")
    assert "netrc" in found.source and "ns3cret" not in found.source
    assert resolve_credential("evil.example", environ) is None
    (tmp_path / ".netrc").write_text("machine other.example login u password p\n")
    (tmp_path / ".netrc").chmod(0o600)
    assert resolve_credential("other.example", {"HOME": str(tmp_path)}) == Credential(
        "u", "p", f"{tmp_path / '.netrc'} (machine other.example)"
    )
    netrc.write_text("machine reg.example login u password p junk\n")
    with pytest.raises(ConfigError, match=r"netrc: not a readable netrc file"):
        resolve_credential("reg.example", environ)


def test_broken_docker_config_is_named(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(Exception, match=r"config\.json: not a readable docker config"):
        resolve_credential("reg.example", {"DOCKER_CONFIG": str(tmp_path)})


def test_plain_http_only_for_loopback_or_named_hosts() -> None:
    """A remote host is spoken to over HTTPS unless named insecure (no network needed)."""
    assert RegistryClient("127.0.0.1:5000").base == "http://127.0.0.1:5000"
    assert RegistryClient("localhost:5000").base == "http://localhost:5000"
    assert RegistryClient("registry.example.com").base == "https://registry.example.com"
    assert RegistryClient("docker.io").base == "https://registry-1.docker.io"
    assert RegistryClient("reg.lan:5000", insecure=True).base == "http://reg.lan:5000"


# -- the API, anonymous -------------------------------------------------------------------


def test_push_layout_then_read_back(tmp_path: Path, registry: RegistryServer) -> None:
    layout = make_layout(tmp_path / "layout")
    client = client_for(registry)
    digest = push_layout(client, layout, "api/push", ["v1", "v2"])
    index = json.loads((layout / "index.json").read_text())
    assert digest == index["manifests"][0]["digest"]
    for tag in ("v1", "v2"):
        found = client.head_manifest("api/push", tag)
        assert found is not None and found.digest == digest
    manifest = client.get_manifest("api/push", "v1")
    assert manifest.media_type == OCI_MANIFEST and manifest.digest == digest
    assert client.head_manifest("api/push", "nope") is None
    # A second push uploads nothing: every blob is there already.
    said: list[str] = []
    push_layout(client, layout, "api/push", ["v3"], progress=said.append)
    assert not [line for line in said if line.startswith("pushed")]


def test_chunked_and_monolithic_uploads_agree(registry: RegistryServer) -> None:
    client = client_for(registry)
    data = os.urandom(300_001)
    digest = digest_of(data)
    client.upload_blob("api/chunks", data, digest, chunk_size=65_536)
    assert client.get_blob("api/chunks", digest) == data
    other = os.urandom(1000)
    client.upload_blob("api/chunks", other, digest_of(other))
    assert client.blob_exists("api/chunks", digest_of(other))
    with pytest.raises(InputError, match="does not have that digest"):
        client.upload_blob("api/chunks", b"x", digest)


def test_the_stored_files_scan_reads_an_upload_cut_off_midway(registry: RegistryServer) -> None:
    """The secret-leak tests search ``RegistryServer.stored_files``: an upload cut off midway
    (half a gzip stream in ``_uploads``, no end marker) is read as far as it goes, so what it
    carried is found, not skipped or fatal to the search."""
    marker = b"CUT-OFF-UPLOAD-" + os.urandom(8).hex().encode()
    stream = gzip.compress(marker + os.urandom(200_000))
    start = urllib.request.Request(f"{registry.url}/v2/api/cut/blobs/uploads/", method="POST")
    with urllib.request.urlopen(start, timeout=10) as answer:
        location = urllib.parse.urljoin(registry.url, answer.headers["Location"])
    part = urllib.request.Request(location, data=stream[: len(stream) // 2], method="PATCH",
                                  headers={"Content-Type": "application/octet-stream"})  # fmt: skip
    urllib.request.urlopen(part, timeout=10).close()
    found = [path for path, data in registry.stored_files() if marker in data]
    assert found and all("_uploads" in str(path) for path in found), found


def test_upload_of_a_missing_blob_mounts_what_the_repository_has(
    registry: RegistryServer,
) -> None:
    """POST with ``mount`` from the repository itself: 201 when it has the blob, else upload."""
    client = client_for(registry)
    data = os.urandom(5000)
    assert client.upload_missing_blob("api/missing", data, digest_of(data)) is True
    assert client.get_blob("api/missing", digest_of(data)) == data
    assert client.upload_missing_blob("api/missing", data, digest_of(data)) is False
    with pytest.raises(InputError, match="does not have that digest"):
        client.upload_missing_blob("api/missing", b"x", digest_of(data))


def test_tag_listing_follows_link_pagination(tmp_path: Path, registry: RegistryServer) -> None:
    client = client_for(registry)
    layout = make_layout(tmp_path / "l", layers=1, size=10)
    names = [f"t{i:02d}" for i in range(23)]
    push_layout(client, layout, "api/tags", names)
    assert sorted(client.list_tags("api/tags", page_size=5)) == names
    assert client.list_tags("api/never-pushed") == []


def test_docker_manifest_and_index(tmp_path: Path, registry: RegistryServer) -> None:
    client = client_for(registry)
    layout = make_layout(tmp_path / "l", layers=1, size=100)
    image_digest = push_layout(client, layout, "api/index", [])
    image = json.loads(client.get_manifest("api/index", image_digest).raw)
    docker = {**image, "mediaType": DOCKER_MANIFEST}
    docker["config"] = {
        **image["config"],
        "mediaType": "application/vnd.docker.container.image.v1+json",
    }
    docker["layers"] = [
        {**layer, "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip"}
        for layer in image["layers"]
    ]
    raw = json.dumps(docker).encode()
    assert client.put_manifest("api/index", "docker", raw, DOCKER_MANIFEST) == digest_of(raw)
    assert client.get_manifest("api/index", "docker").media_type == DOCKER_MANIFEST
    child = {
        "mediaType": OCI_MANIFEST,
        "digest": image_digest,
        "size": len(client.get_manifest("api/index", image_digest).raw),
        "platform": {"architecture": "amd64", "os": "linux"},
    }
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [child]}
    raw_index = json.dumps(index).encode()
    client.put_manifest("api/index", "multi", raw_index, OCI_INDEX)
    fetched = client.get_manifest("api/index", "multi")
    assert fetched.is_index and fetched.raw == raw_index
    # Promote the index into another repository: children and blobs come along by mount.
    source = ImageRef.parse(f"{registry.host}/api/index:multi")
    target = ImageRef.parse(f"{registry.host}/api/index-copy:multi")
    assert point_tags(client, source, [target]) == digest_of(raw_index)
    copied = client.get_manifest("api/index", image_digest).raw
    assert client.head_manifest("api/index-copy", image_digest) == (
        OCI_MANIFEST,
        image_digest,
        len(copied),
    )
    for layer in image["layers"]:
        assert client.blob_exists("api/index-copy", layer["digest"])


def test_not_found_says_what_to_check(registry: RegistryServer) -> None:
    with pytest.raises(EnvironmentFault, match=r"not found.*Check the repository name"):
        client_for(registry).get_manifest("api/missing", "v1")


# -- auth ---------------------------------------------------------------------------------


def test_basic_auth(tmp_path: Path, auth_registry: Any) -> None:
    server = auth_registry(user="alice", password="right-pass")
    layout = make_layout(tmp_path / "l", layers=1, size=1000)
    good = client_for(server, Credential("alice", "right-pass", "test"))
    digest = push_layout(good, layout, "auth/basic", ["v1"])
    found = good.head_manifest("auth/basic", "v1")
    assert found is not None and found.digest == digest

    bad = client_for(server, Credential("alice", "wrong", "PIPELINE_KIT_REGISTRY_USER/PASSWORD"))
    with pytest.raises(EnvironmentFault, match="credentials refused as 'alice'") as error:
        push_layout(bad, layout, "auth/basic", ["v2"])
    assert error.value.exit_code == ExitCode.INFRA
    assert "PIPELINE_KIT_REGISTRY_USER/PASSWORD" in str(error.value)
    with pytest.raises(EnvironmentFault, match="asks for credentials and none were found"):
        client_for(server).head_manifest("auth/basic", "v1")
    assert good.head_manifest("auth/basic", "v2") is None  # nothing was pushed
    assert digest.startswith("sha256:")


def test_bearer_tokens_with_scopes_and_mount(
    tmp_path: Path, token_registry: tuple[RegistryServer, TokenServer]
) -> None:
    server, tokens = token_registry
    client = client_for(server, Credential("robot", "t0ken-pass", "test"))
    layout = make_layout(tmp_path / "l", layers=2, size=1000)
    digest = push_layout(client, layout, "bearer/src", ["v1"])
    scopes = {s for request in tokens.requests for s in request["scopes"]}
    assert "repository:bearer/src:pull,push" in scopes
    # Cross-repository promote asks for pull on the source and push on the target.
    source = ImageRef.parse(f"{server.host}/bearer/src:v1")
    point_tags(client, source, [ImageRef.parse(f"{server.host}/bearer/dst:v1")])
    mount_scopes = tokens.requests[-1]["scopes"] + tokens.requests[-2]["scopes"]
    assert "repository:bearer/src:pull" in mount_scopes
    assert client.head_manifest("bearer/dst", "v1").digest == digest  # type: ignore[union-attr]

    wrong = client_for(server, Credential("robot", "nope", "test"))
    with pytest.raises(EnvironmentFault, match="credentials refused"):
        wrong.head_manifest("bearer/src", "v1")
    anonymous = client_for(server)
    with pytest.raises(EnvironmentFault, match=r"asks for credentials|credentials refused"):
        anonymous.head_manifest("bearer/src", "v1")


def test_an_identity_token_is_exchanged_by_the_refresh_token_grant(
    tmp_path: Path, token_registry: tuple[RegistryServer, TokenServer]
) -> None:
    """A credential helper's (or ``docker login``'s) identity token, user ``<token>``: the
    token service gets it in a POST body as OAuth2's refresh token, never as Basic credentials
    nor in the URL, and grants the scopes; a token it does not know is refused."""
    server, tokens = token_registry
    tokens.identity_token = "identity-T0ken-48e1aa"
    try:
        before = len(tokens.requests)
        client = client_for(server, Credential("<token>", "identity-T0ken-48e1aa", "test"))
        layout = make_layout(tmp_path / "l", layers=1, size=1000)
        digest = push_layout(client, layout, "identity/svc", ["v1"])
        assert client.head_manifest("identity/svc", "v1").digest == digest  # type: ignore[union-attr]
        asked = tokens.requests[before:]
        assert asked and {request.get("grant") for request in asked} == {"refresh_token"}
        assert "repository:identity/svc:pull,push" in {s for r in asked for s in r["scopes"]}
        wrong = client_for(server, Credential("<token>", "not-it", "test"))
        with pytest.raises(EnvironmentFault, match="credentials refused as '<token>'"):
            wrong.head_manifest("identity/svc", "v1")
    finally:
        tokens.identity_token = None


# -- faults -------------------------------------------------------------------------------


def test_push_through_faults_completes_with_tags_last(
    tmp_path: Path, registry: RegistryServer
) -> None:
    layout = make_layout(tmp_path / "l", layers=8, size=50_000)
    direct = push_layout(client_for(registry), layout, "faults/direct", ["v1"])
    proxy = FaultProxy(registry.port, rate=0.2, seed=11).start()
    try:
        flaky = client_for(proxy.host)
        digest = push_layout(flaky, layout, "faults/proxied", ["a", "b"])
    finally:
        proxy.stop()
    assert digest == direct
    assert proxy.faults() >= 3
    outcomes = {entry.outcome for entry in proxy.log}
    assert len({"503", "429", "reset-before", "reset-after"} & outcomes) >= 3
    # What reached the registry, in order: every tag PUT comes after all blob uploads and
    # after the manifest was stored by digest.
    reached = [e for e in proxy.log if e.outcome in ("ok", "reset-after")]
    tag_puts = [
        i
        for i, e in enumerate(reached)
        if e.method == "PUT" and e.path.endswith(("/manifests/a", "/manifests/b"))
    ]
    by_digest = [
        i for i, e in enumerate(reached) if e.method == "PUT" and f"/manifests/{digest}" in e.path
    ]
    blob_puts = [
        i for i, e in enumerate(reached) if e.method == "PUT" and "/blobs/uploads/" in e.path
    ]
    assert tag_puts and by_digest and blob_puts
    assert min(tag_puts) > max(by_digest) > max(blob_puts)
    assert client_for(registry).head_manifest("faults/proxied", "b").digest == direct  # type: ignore[union-attr]


# -- promote and cache gc -----------------------------------------------------------------


def test_promote_cli_same_repo_other_repo_and_by_digest(
    tmp_path: Path, registry: RegistryServer
) -> None:
    client = client_for(registry)
    digest = push_layout(
        client, make_layout(tmp_path / "l", layers=2, size=500), "prom/app", ["rc"]
    )
    repo = f"{registry.host}/prom/app"
    result = cli(
        "promote",
        f"{repo}:rc",
        "stable",
        f"{registry.host}/prom/prod:live",
        "--format",
        "json",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["digest"] == digest
    # The layout's layers are random bytes, not tars: the tags move and the provenance is
    # attached, and the promote says it published without an SBOM instead of failing.
    for attested in data["attestations"]:
        assert attested["provenance"] and attested["sbom"] is None
        assert "cannot be read for the SBOM" in attested["no_sbom"]
    assert "warning: prom/app without an SBOM: " in result.stderr
    assert client.head_manifest("prom/app", "stable").digest == digest  # type: ignore[union-attr]
    assert client.head_manifest("prom/prod", "live").digest == digest  # type: ignore[union-attr]
    by_digest = cli(
        "promote", f"{repo}@{digest}", "pinned", "--format", "gitlab", "--dotenv", "p.env",
        cwd=tmp_path,
    )  # fmt: skip
    assert by_digest.returncode == 0, by_digest.stderr
    assert client.head_manifest("prom/app", "pinned").digest == digest  # type: ignore[union-attr]
    assert parse_dotenv(tmp_path / "p.env") == {
        "PIPELINE_KIT_DIGEST": digest,
        "PIPELINE_KIT_TAGS": f"{repo}:pinned",
    }
    missing = cli("promote", f"{repo}:nope", "x", cwd=tmp_path)
    assert missing.returncode == 3 and "not found" in missing.stderr


def test_cache_gc_deletes_old_entries_beyond_keep(tmp_path: Path, registry: RegistryServer) -> None:
    client = client_for(registry)
    now = datetime(2026, 11, 24, tzinfo=timezone.utc)
    ages_days = {"k1": 1, "k2": 3, "k3": 20, "k4": 40, "k5": 60}
    sizes = {}
    for tag, age in ages_days.items():
        layout = make_layout(
            tmp_path / tag,
            layers=1,
            size=1000 + age,
            created=(now - timedelta(days=age)).isoformat(),
        )
        push_layout(client, layout, "gc/app/cache", [tag])
        sizes[tag] = 1000 + age
    options = CacheGcOptions(
        config_path=None, cwd=tmp_path, repository=f"{registry.host}/gc/app/cache",
        ttl="14d", keep=3, dry_run=True, format="json", now=now,
    )  # fmt: skip
    out = io.StringIO()
    assert cache_gc(options, out, io.StringIO()) == 0
    report = json.loads(out.getvalue())
    # Newest three kept whatever their age; of the rest, only those past 14 days go.
    assert report["deleted"] == ["k4", "k5"] and report["dry_run"] is True
    assert report["bytes_freed"] == sizes["k4"] + sizes["k5"]
    assert sorted(client.list_tags("gc/app/cache")) == sorted(ages_days)  # dry run: all there

    out = io.StringIO()
    import dataclasses

    assert cache_gc(dataclasses.replace(options, dry_run=False), out, io.StringIO()) == 0
    assert sorted(client.list_tags("gc/app/cache")) == ["k1", "k2", "k3"]
    assert json.loads(out.getvalue())["deleted"] == ["k4", "k5"]


def test_cache_gc_needs_a_repository(tmp_path: Path) -> None:
    result = cli("cache", "gc", cwd=tmp_path)
    assert result.returncode == 2 and "No cache repository" in result.stderr


@pytest.mark.parametrize(("environ", "deleted"), [({}, False), ({"GITHUB_ACTIONS": "true"}, True)])
def test_cache_gc_in_a_terminal_deletes_only_in_ci(
    tmp_path: Path, registry: RegistryServer, environ: dict[str, str], deleted: bool
) -> None:
    """A person at a terminal gets a report; a CI job deletes, also where its runner gives it a
    terminal (act runs steps in one)."""
    import pty
    import subprocess
    import sys

    from tests.support.gitrepo import cli_env

    client = client_for(registry)
    repo = f"gc-tty/{'ci' if environ else 'person'}/cache"
    old = (datetime.now(timezone.utc) - timedelta(days=40)).isoformat()
    push_layout(
        client, make_layout(tmp_path / "old", layers=1, size=300, created=old), repo, ["old"]
    )
    leader, follower = pty.openpty()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "pipeline_kit", "cache", "gc", "--repository",
             f"{registry.host}/{repo}", "--ttl", "14d", "--keep", "0"],
            cwd=tmp_path, env=cli_env(environ), stdin=follower, capture_output=True, text=True,
            timeout=60,
        )  # fmt: skip
    finally:
        os.close(leader)
        os.close(follower)
    assert result.returncode == 0, result.stderr
    assert client.list_tags(repo) == ([] if deleted else ["old"])


def test_a_client_that_will_push_asks_one_token_for_its_reads_and_writes(
    tmp_path: Path, token_registry: tuple[RegistryServer, TokenServer]
) -> None:
    """A build that publishes reads the repository first (the lookup), then writes. Told so
    (``will_push``), the client asks the token service once, for pull and push, at the first
    challenge; without it, the first write takes a 401 and a second token request."""
    server, tokens = token_registry
    robot = Credential("robot", "t0ken-pass", "test")
    for will_push, expected in ((True, ["pull,push"]), (False, ["pull", "pull,push"])):
        repo = f"bearer/once-{will_push}".lower()
        client = client_for(server, robot)
        if will_push:
            client.will_push(repo)
        asked = len(tokens.requests)
        assert client.head_manifest(repo, "v1") is None
        push_layout(client, make_layout(tmp_path / repo, layers=1, size=1000), repo, ["v1"])
        scopes = [r["scopes"] for r in tokens.requests[asked:]]
        assert scopes == [[f"repository:{repo}:{actions}"] for actions in expected], scopes


def test_a_token_service_that_refuses_push_still_serves_the_reads(tmp_path: Path) -> None:
    """Some token services refuse (403) a scope the user lacks instead of granting the part
    they may: a client that will push falls back to asking for pull, and its reads work as
    before; the write is refused, naming the scope."""
    tokens = TokenServer(tmp_path / "t", "robot", "t0ken-pass", refuse_push=True)
    (tmp_path / "t").mkdir()
    tokens.start()
    try:
        with running_registry(tmp_path / "r", tokens.registry_auth()) as server:
            client = client_for(server, Credential("robot", "t0ken-pass", "test"))
            client.will_push("bearer/ro")
            assert client.head_manifest("bearer/ro", "v1") is None
            assert [r["scopes"] for r in tokens.requests] == [
                ["repository:bearer/ro:pull,push"],
                ["repository:bearer/ro:pull"],
            ]
            with pytest.raises(EnvironmentFault, match="token request: access denied"):
                client.upload_blob("bearer/ro", b"x", digest_of(b"x"))
    finally:
        tokens.stop()


def test_a_build_gets_its_token_while_it_reads_the_checkout_and_asks_for_push_at_once(
    tmp_path: Path, token_registry: tuple[RegistryServer, TokenServer]
) -> None:
    """The build command starts talking to the image's registry as soon as it knows the
    checkout builds: one ``GET /v2/`` takes the challenge, and the token is fetched while
    detection runs, so no request of the build itself is answered 401. That token is for pull
    and push at once when the build publishes. A dry run asks for pull, when it first needs
    the registry. (The append then finds nothing to append to, which ends the call; the
    requests are what is checked.)"""
    server, tokens = token_registry
    front = FaultProxy(server.port, rate=0.0).start()
    try:
        repo = GitRepo.init(tmp_path / "repo")
        repo.commit({
            "Dockerfile": "FROM scratch\nCOPY app/ /app/\n",
            "app/main.txt": "v1\n",
            "pipeline-kit.yaml": f"image: {front.host}/bearer/build\n",
        })  # fmt: skip
        env = {"PIPELINE_KIT_REGISTRY": front.host, "PIPELINE_KIT_REGISTRY_USER": "robot",
               "PIPELINE_KIT_REGISTRY_PASSWORD": "t0ken-pass"}  # fmt: skip
        for args, actions in ((("--strategy", "append"), "pull,push"), (("--dry-run",), "pull")):
            asked, sent = len(tokens.requests), len(front.log)
            result = cli("build", *args, cwd=repo.path, env=env)
            assert "no previous image" in result.stderr or result.returncode == 0, result.stderr
            scopes = [s for r in tokens.requests[asked:] for s in r["scopes"]]
            requests = front.log[sent:]
            refused = [(e.method, e.path) for e in requests if e.status == 401]
            if "--dry-run" in args:  # no warm-up (it may plan without the registry): each of
                # the lookup's parallel requests takes its 401 and asks for pull
                assert set(scopes) == {f"repository:bearer/build:{actions}"}, (args, scopes)
                assert ("GET", "/v2/") not in [(e.method, e.path) for e in requests]
                continue
            assert scopes == [f"repository:bearer/build:{actions}"], (args, scopes)
            assert refused == [("GET", "/v2/")], (args, refused)
            assert (requests[0].method, requests[0].path) == ("GET", "/v2/")
            assert any("/manifests/" in e.path and e.status != 401 for e in requests)
    finally:
        front.stop()
