"""The local preview end to end: the example image, built with buildah from an mmdebstrap base and
pushed to a real registry, pulled and run by podman with trained weights mounted, gated by the
real smoke gate, and torn down on every path (pass, fail, SIGTERM).

Every preview of this session carries a label scope unique to it, so nothing here can see or
remove a container that is not its own.
"""

from __future__ import annotations

import io
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from pipeline_kit.adapters.registry.credentials import Credential, write_docker_config
from pipeline_kit.commands.preview import GcOptions, PreviewOptions, gc
from tests.support.ci_outputs import parse_github_outputs
from tests.support.example_image import BuiltExample, containers, remove_storage
from tests.support.gitrepo import cli, cli_env
from tests.support.processes import argv_seen
from tests.support.services.registry import free_port


def names(example: BuiltExample) -> set[str]:
    return {c["Labels"]["pipeline-kit.dev/preview"] for c in containers(example)}


def preview(example: BuiltExample, *args: str) -> subprocess.CompletedProcess[str]:
    result = cli("preview", *args, cwd=example.repo.path, timeout=300)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def up(example: BuiltExample, *args: str) -> dict[str, Any]:
    result = preview(example, "up", "--image", example.image, "--weights", str(example.weights),
                     "--format", "json", *args)  # fmt: skip
    assert result.returncode == 0, result.stderr
    record: dict[str, Any] = json.loads(result.stdout)
    return record


def wait_ready(url: str, deadline_s: float = 60) -> None:
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            urllib.request.urlopen(f"{url}/health/ready", timeout=2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_up_runs_the_digest_with_weights_read_only_on_loopback(example_image: BuiltExample) -> None:
    record = up(example_image, "--name", "up-check", "--owner", "alice")
    try:
        assert record["digest"] == example_image.digest and record["owner"] == "alice"
        assert record["ref"] == "main" and record["url"].startswith("http://127.0.0.1:")
        (container,) = containers(example_image, "pipeline-kit.dev/preview=up-check")
        inspect = subprocess.run(
            [*example_image.podman, "inspect", container["Id"]],
            capture_output=True, text=True, env=example_image.podman_env, check=True,
        )  # fmt: skip
        (state,) = json.loads(inspect.stdout)
        assert state["ImageDigest"] == example_image.digest  # pulled by digest from the registry
        (mount,) = [m for m in state["Mounts"] if m["Destination"] == "/models"]
        assert mount["Source"] == str(example_image.weights) and mount["RW"] is False
        (binding,) = state["HostConfig"]["PortBindings"]["8000/tcp"]
        assert binding["HostIp"] == "127.0.0.1"
        assert record["url"] == f"http://127.0.0.1:{binding['HostPort']}"
        assert "MODEL_PATH=/models" in state["Config"]["Env"]
        labels = state["Config"]["Labels"]
        assert labels["pipeline-kit.dev/owner"] == "alice"
        compact = record["expires"].replace("-", "").replace(":", "")  # ISO 8601 basic format
        assert labels["pipeline-kit.dev/expires"] == compact

        wait_ready(record["url"])
        gate = cli("smoke", "--url", record["url"], "--format", "json", cwd=example_image.repo.path)
        assert gate.returncode == 0, gate.stdout + gate.stderr
        assert json.loads(gate.stdout)["passed"] is True

        status = json.loads(preview(example_image, "status", "--format", "json").stdout)
        (listed,) = [p for p in status["previews"] if p["name"] == "up-check"]
        assert listed["state"] == "running" and listed["expired"] is False
        assert listed["url"] == record["url"] and listed["digest"] == example_image.digest
    finally:
        down = preview(example_image, "down", "up-check", "--format", "json")
    assert down.returncode == 0 and json.loads(down.stdout)["removed"] is True
    assert "up-check" not in names(example_image)
    again = preview(example_image, "down", "up-check", "--format", "json")
    assert again.returncode == 0
    assert json.loads(again.stdout) == {
        "name": "up-check",
        "removed": False,
        "note": "no such preview; nothing to remove",
    }


def test_run_passes_the_gate_and_tears_down(example_image: BuiltExample, tmp_path: Path) -> None:
    junit = tmp_path / "smoke.xml"
    result = preview(example_image, "run", "--image", example_image.image,
                     "--weights", str(example_image.weights), "--junit", str(junit),
                     "--format", "json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["passed"] is True and document["smoke"]["digest"] == example_image.digest
    assert [c["name"] for c in document["smoke"]["cases"]] == [
        "readiness", "completes a famous line", "answers at all",
    ]  # fmt: skip
    assert document["preview"]["name"] == "llm-service-main"  # <prefix>-<branch>
    assert document["down"] == {"name": "llm-service-main", "removed": True}
    assert set(document["timings"]) == {"up", "gate", "down"}
    assert 'failures="0"' in junit.read_text()
    assert names(example_image) == set()


def test_run_records_its_result_and_the_next_run_compares_with_it_without_a_second_preview(
    example_image: BuiltExample, tmp_path: Path
) -> None:
    """The baseline through the preview: ``run`` attaches its passing result to the digest it
    judged (the preview's image), the next ``run`` compares with it prompt by prompt. A copy of
    the image in a repository of its own keeps the example's repository free of referrers."""
    registry = example_image.repository.split("/", 1)[0]
    copy = f"{registry}/baseline-check/llm-service"
    promoted = cli("promote", example_image.image, f"{copy}:candidate", cwd=tmp_path)
    assert promoted.returncode == 0, promoted.stderr
    image = f"{copy}@{example_image.digest}"
    first = preview(example_image, "run", "--image", image, "--weights",
                    str(example_image.weights), "--record", "--format", "json")  # fmt: skip
    assert first.returncode == 0, first.stderr
    cases = {c["name"]: c for c in json.loads(first.stdout)["smoke"]["cases"]}
    assert "does not exist" in cases["baseline"]["message"]  # no stable yet: nothing compared
    assert cases["result recorded"]["passed"]
    referrers = f"http://{registry}/v2/baseline-check/llm-service/manifests/"
    request = urllib.request.Request(referrers + example_image.digest.replace(":", "-"))
    request.add_header("Accept", "application/vnd.oci.image.index.v1+json")
    with urllib.request.urlopen(request, timeout=10) as answer:
        kinds = sorted(entry["artifactType"] for entry in json.loads(answer.read())["manifests"])
    # one result, beside the provenance and the SBOM the promote brought along
    assert kinds == ["application/vnd.in-toto+json"] * 2 + [
        "application/vnd.pipeline-kit.smoke-result.v1+json"
    ]

    second = preview(example_image, "run", "--image", image, "--weights",
                     str(example_image.weights), "--baseline", "candidate", "--no-record",
                     "--format", "json")  # fmt: skip
    assert second.returncode == 0, second.stderr
    cases = {c["name"]: c for c in json.loads(second.stdout)["smoke"]["cases"]}
    famous = cases["baseline: completes a famous line"]
    assert famous["passed"] and famous["message"].startswith("same output")
    assert famous["baseline"] == famous["output"] and "summer's day" in famous["output"]
    assert "result recorded" not in cases
    assert names(example_image) == set()


def test_a_failing_gate_exits_1_and_still_tears_down(
    example_image: BuiltExample, tmp_path: Path
) -> None:
    outputs = tmp_path / "outputs"
    result = cli("preview", "run", "--image", example_image.image, "--name", "fails",
                 "--weights", str(example_image.weights), "--prompt", "Shall I compare thee",
                 "--expect-contains", "no sonnet says this", "--format", "github",
                 cwd=example_image.repo.path, timeout=300,
                 env={"GITHUB_OUTPUT": str(outputs)})  # fmt: skip
    assert result.returncode == 1, result.stderr
    values = parse_github_outputs(outputs.read_text())
    assert values["verdict"] == "failed" and values["preview-name"] == "fails"
    assert values["digest"] == example_image.digest
    assert json.loads(values["json"])["down"] == {"name": "fails", "removed": True}
    assert "expected the output to contain 'no sonnet says this'" in result.stdout
    assert "-- last lines of fails --" in result.stderr  # the server's log, before it goes
    assert "llm-service: model llm-service loaded" in result.stderr
    assert "fails torn down" in result.stderr
    assert "fails" not in names(example_image)


def test_sigterm_while_waiting_for_readiness_tears_down(
    example_image: BuiltExample, tmp_path: Path
) -> None:
    """A cancelled CI job: SIGTERM arrives while the gate waits for a model that never loads."""
    no_weights = tmp_path / "empty"
    no_weights.mkdir(mode=0o755)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline_kit", "preview", "run", "--image", example_image.image,
         "--name", "cancelled", "--weights", str(no_weights), "--prompt", "hi",
         "--ready-timeout", "300"],
        cwd=example_image.repo.path, env=cli_env(), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    seen: list[str] = []
    gating = threading.Event()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            seen.append(line)
            if "is up at" in line:
                gating.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert gating.wait(timeout=120), "".join(seen)
        assert names(example_image) == {"cancelled"}  # running while the gate waits
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(timeout=10)
    stderr = "".join(seen)
    assert "cancelled torn down" in stderr and "interrupted by SIGTERM" in stderr
    assert "Traceback" not in stderr
    assert names(example_image) == set()


def test_gc_removes_only_expired_previews_of_its_own_scope(
    example_image: BuiltExample, tmp_path: Path
) -> None:
    up(example_image, "--name", "gc-old", "--ttl", "1h")
    up(example_image, "--name", "gc-fresh", "--ttl", "48h")
    # A preview of another scope on the same podman storage: older than anything, never touched.
    other_config = tmp_path / "other.yaml"
    text = (example_image.repo.path / "pipeline-kit.yaml").read_text()
    other_config.write_text(text.replace(example_image.scope, example_image.scope + "-other"))
    other = cli("--config", str(other_config), "preview", "up", "--image", example_image.image,
                "--name", "gc-other", "--ttl", "1s", "--weights", str(example_image.weights),
                cwd=example_image.repo.path)  # fmt: skip
    assert other.returncode == 0, other.stderr
    # The same name from the other scope: podman refuses it, and the kit removes nothing.
    clash = cli("--config", str(other_config), "preview", "up", "--image", example_image.image,
                "--name", "gc-fresh", "--weights", str(example_image.weights),
                cwd=example_image.repo.path)  # fmt: skip
    assert clash.returncode == 3 and "already in use" in clash.stderr
    try:
        later = datetime.now(timezone.utc) + timedelta(hours=2)
        common = PreviewOptions(None, example_image.repo.path, format="json", now=later,
                                environ=cli_env())  # fmt: skip
        out = io.StringIO()
        assert gc(GcOptions(common, dry_run=True), out, io.StringIO()) == 0
        report = json.loads(out.getvalue())
        assert [r["name"] for r in report["removed"]] == ["gc-old"] and report["dry_run"]
        assert names(example_image) == {"gc-old", "gc-fresh"}  # a dry run removes nothing

        out = io.StringIO()
        assert gc(GcOptions(common), out, io.StringIO()) == 0
        report = json.loads(out.getvalue())
        assert [r["name"] for r in report["removed"]] == ["gc-old"]
        assert [r["name"] for r in report["kept"]] == ["gc-fresh"]
        assert names(example_image) == {"gc-fresh"}
        other_scope = f"pipeline-kit.dev/scope={example_image.scope}-other"
        still = subprocess.run(
            [*example_image.podman, "ps", "--all", "--quiet", f"--filter=label={other_scope}"],
            capture_output=True, text=True, env=example_image.podman_env, check=True,
        )  # fmt: skip
        assert len(still.stdout.split()) == 1
    finally:
        preview(example_image, "down", "gc-fresh")
        cli("--config", str(other_config), "preview", "down", "gc-other",
            cwd=example_image.repo.path)  # fmt: skip
    assert names(example_image) == set()


def test_bad_input_and_an_unreachable_registry_leave_nothing(example_image: BuiltExample) -> None:
    weights = str(example_image.weights)
    tagged = example_image.image.split("@")[0] + ":latest"
    result = preview(example_image, "up", "--image", tagged, "--weights", weights)
    assert result.returncode == 2
    assert "a tag is not a preview reference" in result.stderr
    missing = preview(example_image, "up", "--image", example_image.image, "--weights", "/none")
    assert missing.returncode == 2 and "--weights" in missing.stderr
    # A digest podman does not have (one it has under any name would not be pulled again).
    unreachable = f"127.0.0.1:{free_port()}/examples/llm-service@sha256:{'0' * 64}"
    pull = preview(example_image, "up", "--image", unreachable, "--weights", weights)
    assert pull.returncode == 3 and "podman" in pull.stderr
    assert containers(example_image) == []


def test_a_private_registry_is_pulled_with_an_authfile_never_argv(
    tmp_path: Path, auth_registry: Any
) -> None:
    """podman pulls from a basic-auth registry with the kit's 0600 authfile; the password is in
    no process's argv and no output. A busybox image keeps this one small."""
    password = "preview-Passw0rd-51c2"
    server = auth_registry(user="previewer", password=password)
    auth_dir = tmp_path / "auth"
    write_docker_config(auth_dir, {server.host: Credential("previewer", password)})
    context = tmp_path / "image"
    context.mkdir()
    shutil.copy("/usr/bin/busybox", context / "busybox")
    (context / "Dockerfile").write_text(
        'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\n'
        'CMD ["httpd", "-f", "-p", "8000", "-h", "/"]\n'
    )
    storage = ["--storage-driver=vfs", f"--root={tmp_path}/b/root", f"--runroot={tmp_path}/b/run"]
    bud = ["bud", "--isolation=chroot", "--quiet", "-t", "localhost/private", str(context)]
    subprocess.run(["buildah", *storage, *bud], check=True, capture_output=True)
    subprocess.run(["buildah", *storage, "push", "--quiet", "--tls-verify=false",
                    f"--authfile={auth_dir}/config.json", f"--digestfile={tmp_path}/digest",
                    "localhost/private", f"docker://{server.host}/team/private:1"],
                   check=True, capture_output=True)  # fmt: skip
    image = f"{server.host}/team/private@{(tmp_path / 'digest').read_text().strip()}"
    runroot = Path(tempfile.mkdtemp(prefix="pk-auth-"))
    root = tmp_path / "svc"
    (root / "weights").mkdir(parents=True)
    (root / "pipeline-kit.yaml").write_text(
        f"image: {server.host}/team/private\n"
        f"preview:\n  scope: pk-test-auth-{runroot.name}\n  weights: weights\n"
        f"  local: {{containers_conf: relaxed, storage_driver: vfs, root: {tmp_path}/p,"
        f" runroot: {runroot}, stop_timeout: 0s}}\n"
    )
    try:
        denied = cli("preview", "up", "--image", image, "--name", "private", cwd=root)
        assert denied.returncode == 3 and "podman" in denied.stderr
        env = {"PIPELINE_KIT_REGISTRY": server.host, "PIPELINE_KIT_REGISTRY_USER": "previewer"}
        env["PIPELINE_KIT_REGISTRY_PASSWORD"] = password
        with argv_seen() as seen:
            result = cli("preview", "up", "--image", image, "--name", "private", cwd=root, env=env)
        assert result.returncode == 0, result.stderr
        assert any(" run " in line and "--authfile=" in line for line in seen)  # it was seen
        assert not [line for line in seen if password in line]
        assert password not in result.stdout + result.stderr
    finally:
        cli("preview", "down", "private", cwd=root)
        remove_storage(runroot)
        remove_storage(tmp_path / "p")
        remove_storage(tmp_path / "b")


def test_run_gates_a_multi_platform_index_through_the_runner_s_image(
    example_image: BuiltExample,
) -> None:
    """An index listing an arm64 image first and the example's amd64 image second: podman on
    this amd64 runner pulls and runs the amd64 one, the gate judges it, and the record names
    the index it was given. (The arm64 entry is the same image with a config that says arm64:
    which one podman took shows in the architecture it reports.)"""
    from pipeline_kit.adapters.registry.client import RegistryClient
    from pipeline_kit.adapters.registry.references import ImageRef, sha256_digest
    from pipeline_kit.dockerfile.platform import Platform
    from pipeline_kit.publish.index import OCI_INDEX, index_body

    ref = ImageRef.parse(example_image.repository)
    client, repo = RegistryClient(ref.registry), ref.repository
    amd64 = client.get_manifest(repo, example_image.digest)
    body = json.loads(amd64.raw)
    config = json.loads(client.get_blob(repo, body["config"]["digest"]))
    raw_config = json.dumps({**config, "architecture": "arm64"}).encode()
    client.upload_blob(repo, raw_config, sha256_digest(raw_config))
    arm_config = {**body["config"], "digest": sha256_digest(raw_config), "size": len(raw_config)}
    raw_arm = json.dumps({**body, "config": arm_config}).encode()
    arm64 = client.put_manifest(repo, sha256_digest(raw_arm), raw_arm, amd64.media_type)
    index = index_body([
        (Platform("linux", "arm64"), amd64.media_type, arm64, len(raw_arm)),
        (Platform("linux", "amd64"), amd64.media_type, amd64.digest, len(amd64.raw)),
    ])  # fmt: skip
    digest = client.put_manifest(repo, sha256_digest(index), index, OCI_INDEX)

    result = preview(example_image, "run", "--image", f"{example_image.repository}@{digest}",
                     "--weights", str(example_image.weights), "--name", "index",
                     "--format", "json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["passed"] is True and document["smoke"]["digest"] == digest
    # podman names the image by the index it pulled; its config says which entry that was.
    inspected = subprocess.run(
        [*example_image.podman, "image", "inspect", "--format", "{{.Architecture}}",
         f"{example_image.repository}@{digest}"],
        capture_output=True, text=True, env=example_image.podman_env, check=True,
    )  # fmt: skip
    assert inspected.stdout.strip() == "amd64"
    assert names(example_image) == set()
