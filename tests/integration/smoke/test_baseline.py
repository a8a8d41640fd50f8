"""The gate against what runs now: results recorded as referrers, read back and compared.

The example server (examples/llm-service) runs as a process on loopback, as the baseline and
as each candidate: the same build, a retrained model, a build 2x slower (its RESPONSE_DELAY),
one that refuses requests under load (MAX_IN_FLIGHT). The digests judged are small images
pushed to the loopback registry (distribution 2.8, which has no referrers API: the kit keeps
the referrers tag, ``sha256-<hex>``); every verdict is the CLI's, read from its JSON and JUnit.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import REPO
from tests.support.ci_contexts import github_env
from tests.support.services.fake_model_server import SmokeRun, run_smoke
from tests.support.services.registry import RegistryServer, free_port

EXAMPLE = REPO / "examples" / "llm-service"
ARTIFACT_TYPE = "application/vnd.pipeline-kit.smoke-result.v1+json"
DELAY = 0.2  # seconds per completion: latencies the ratio judges well above the noise

CONFIG = """\
image: {image}
service:
  model: llm-service
smoke:
  protocol: openai-chat
  request_timeout: 30
  requests:
    - name: completes a famous line
      prompt: Shall I compare thee
      max_tokens: 16
    - name: answers at all
      prompt: When in disgrace
  load:
    concurrency: 4
    requests: 16
    max_error_rate: 0.1
  metrics: {{}}
  baseline:
    max_latency_ratio: 1.5
    latency_slack: 0.1
    min_throughput_ratio: 0.6
"""


# -- the parts ------------------------------------------------------------------------------


def _send(method: str, url: str, data: bytes = b"", headers: dict[str, str] | None = None) -> Any:
    request = urllib.request.Request(url, data=data or None, method=method, headers=headers or {})
    return urllib.request.urlopen(request, timeout=30)


def push_image(registry: RegistryServer, repo: str, tag: str, marker: str) -> str:
    """A one-layer image (its layer a file holding ``marker``); its manifest digest."""
    base = f"{registry.url}/v2/{repo}"

    def blob(data: bytes) -> dict[str, Any]:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        upload = _send("POST", f"{base}/blobs/uploads/").headers["Location"]
        location = upload if "://" in upload else registry.url + upload
        joiner = "&" if "?" in location else "?"
        _send("PUT", f"{location}{joiner}digest={digest}", data,
              {"Content-Type": "application/octet-stream"})  # fmt: skip
        return {"digest": digest, "size": len(data)}

    layer = blob(marker.encode())
    rootfs = {"type": "layers", "diff_ids": [layer["digest"]]}
    config = blob(json.dumps({"architecture": "amd64", "os": "linux", "rootfs": rootfs}).encode())
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **layer}],
    }).encode()  # fmt: skip
    _send("PUT", f"{base}/manifests/{tag}", manifest,
          {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})  # fmt: skip
    return "sha256:" + hashlib.sha256(manifest).hexdigest()


def get_json(url: str, accept: str = "application/vnd.oci.image.index.v1+json") -> Any:
    with _send("GET", url, headers={"Accept": accept}) as response:
        return json.loads(response.read())


def referrers_tag(registry: RegistryServer, repo: str, digest: str) -> list[dict[str, Any]]:
    """The referrers tag's index, as the OCI distribution spec keeps it; [] when absent."""
    try:
        index = get_json(f"{registry.url}/v2/{repo}/manifests/{digest.replace(':', '-')}")
    except urllib.error.HTTPError as exc:
        assert exc.code == 404
        return []
    manifests: list[dict[str, Any]] = index["manifests"]
    return manifests


def stored_result(registry: RegistryServer, repo: str, entry: dict[str, Any]) -> Any:
    manifest = get_json(
        f"{registry.url}/v2/{repo}/manifests/{entry['digest']}",
        "application/vnd.oci.image.manifest.v1+json",
    )
    with _send("GET", f"{registry.url}/v2/{repo}/blobs/{manifest['layers'][0]['digest']}") as r:
        return manifest, json.loads(r.read())


class Server:
    def __init__(self, weights: Path, **settings: str) -> None:
        self.port = free_port()
        env = {**os.environ, "MODEL_PATH": str(weights), "PORT": str(self.port),
               "HOST": "127.0.0.1", "MODEL_NAME": "llm-service", **settings}  # fmt: skip
        self.process = subprocess.Popen(
            [sys.executable, "-m", "server"], cwd=EXAMPLE, env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture
def serve(weights: Path) -> Iterator[Any]:
    started: list[Server] = []

    def start(model: Path | None = None, **settings: str) -> str:
        server = Server(model or weights, **settings)
        started.append(server)
        return server.url

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def retrained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The model trained again on a text where the famous line ends otherwise."""
    out = tmp_path_factory.mktemp("retrained")
    script = (
        "import sys; from pathlib import Path; from server.model import train; "
        "text = Path('corpus/sonnets.txt').read_text().replace(\"summer's day\", 'winter night'); "
        "train(text, Path(sys.argv[1]))"
    )
    subprocess.run([sys.executable, "-c", script, str(out)], cwd=EXAMPLE, check=True)
    return out


class Repo:
    """An image repository with a stable digest and the config that gates into it."""

    def __init__(self, registry: RegistryServer, root: Path) -> None:
        self.registry = registry
        self.name = f"gated/llm-{uuid.uuid4().hex[:8]}"
        self.image = f"{registry.host}/{self.name}"
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        (root / "pipeline-kit.yaml").write_text(CONFIG.format(image=self.image))
        self.stable = push_image(registry, self.name, "stable", "stable build")

    def candidate(self, marker: str) -> str:
        return push_image(self.registry, self.name, marker, marker)

    def gate(
        self, url: str, digest: str, *args: str, env: dict[str, str] | None = None
    ) -> SmokeRun:
        return run_smoke(self.root, "--url", url, "--digest", digest, *args, env=env)

    def results(self, digest: str) -> list[dict[str, Any]]:
        return [e for e in referrers_tag(self.registry, self.name, digest)
                if e.get("artifactType") == ARTIFACT_TYPE]  # fmt: skip


@pytest.fixture
def gated(registry: RegistryServer, tmp_path: Path, serve: Any) -> Repo:
    """A repository whose stable digest passed a gate against the example server, and has its
    result recorded."""
    repo = Repo(registry, tmp_path / "service")
    first = repo.gate(serve(RESPONSE_DELAY=str(DELAY)), repo.stable)
    assert first.code == 0, first.failures
    assert first.cases["baseline"]["passed"]
    assert "nothing to compare against" in first.cases["baseline"]["message"]
    assert first.cases["result recorded"]["passed"]
    return repo


# -- the baseline is kept -------------------------------------------------------------------


def test_a_passing_gate_attaches_its_result_to_the_digest_it_judged(gated: Repo) -> None:
    (entry,) = gated.results(gated.stable)
    manifest, result = stored_result(gated.registry, gated.name, entry)
    assert manifest["subject"]["digest"] == gated.stable
    assert manifest["artifactType"] == ARTIFACT_TYPE
    assert result["image"] == f"{gated.name}@{gated.stable}"
    assert result["trusted"] is True
    famous = next(r for r in result["requests"] if r["prompt"] == "Shall I compare thee")
    assert "summer's day" in famous["outputs"][0]
    assert famous["tokens"][0] > 0 and famous["seconds"][0] >= DELAY
    assert result["load"]["sent"] == 16 and result["load"]["failed"] == 0
    assert result["metrics"]["requests"] >= 2 + 16  # the example server's own counter


def test_the_same_build_passes_against_the_baseline_without_running_it_again(
    gated: Repo, serve: Any
) -> None:
    candidate = gated.candidate("same-build")
    run = gated.gate(serve(RESPONSE_DELAY=str(DELAY)), candidate)
    assert run.code == 0, run.failures
    famous = run.cases["baseline: completes a famous line"]
    assert famous["passed"] and famous["message"].startswith("same output")
    assert "summer's day" in famous["message"]  # both sides are shown
    assert run.cases["baseline: latency p95"]["passed"]
    assert run.cases["baseline: load tokens per second"]["passed"]
    # The candidate's own result is recorded; stable's is unchanged.
    assert len(gated.results(candidate)) == 1 and len(gated.results(gated.stable)) == 1


def test_a_retrained_model_fails_on_the_prompt_whose_output_changed(
    gated: Repo, serve: Any, retrained: Path
) -> None:
    candidate = gated.candidate("retrained")
    summary = gated.root / "summary.md"
    url = serve(retrained, RESPONSE_DELAY=str(DELAY))
    run = gated.gate(url, candidate, "--summary", str(summary))
    assert run.code == 1
    failed = [name for name, case in run.cases.items() if not case["passed"]]
    assert failed == ["baseline: completes a famous line"]
    case = run.cases["baseline: completes a famous line"]
    assert case["message"].startswith("output differs from character")
    assert "summer's day" in case["message"] and "winter night" in case["message"]
    # Both sides, in each report: JSON fields, JUnit's failure and output, the summary's table.
    assert "summer's day" in case["baseline"] and "winter night" in case["output"]
    (junit,) = [c for c in run.suite.iter("testcase") if c.get("name") == case["name"]]
    assert "output differs" in junit.find("failure").get("message", "")  # type: ignore[union-attr]
    shown = junit.findtext("system-out") or ""
    assert "baseline:  " in shown and "summer's day" in shown and "winter night" in shown
    row = next(line for line in summary.read_text().splitlines()
               if line.startswith("| completes a famous line | **fail** |"))  # fmt: skip
    assert "summer's day" in row and "winter night" in row
    assert gated.results(candidate) == []  # a failed gate records nothing


def test_a_build_twice_as_slow_fails_on_the_latency_ratio(gated: Repo, serve: Any) -> None:
    candidate = gated.candidate("slower")
    run = gated.gate(serve(RESPONSE_DELAY=str(2 * DELAY)), candidate)
    assert run.code == 1
    latency = run.cases["baseline: latency p95"]
    assert not latency["passed"]
    ratio = float(latency["message"].split(": ")[1].split("x")[0])
    assert 1.6 < ratio < 2.6, latency["message"]
    assert "at most 1.5x (or within 0.1s of it)" in latency["message"]
    assert run.cases["baseline: completes a famous line"]["passed"]  # same answers, slower


def test_a_build_that_refuses_requests_under_load_fails_on_its_error_rate(
    gated: Repo, serve: Any
) -> None:
    candidate = gated.candidate("overloaded")
    run = gated.gate(serve(RESPONSE_DELAY=str(DELAY), MAX_IN_FLIGHT="1"), candidate)
    assert run.code == 1
    errors = run.cases["load: errors"]
    assert not errors["passed"]
    assert "limit 10.0%" in errors["message"] and "503" in errors["message"]
    assert "more than 1 requests at once" in errors["message"]
    assert run.cases["baseline: completes a famous line"]["passed"]  # alone, it answers


# -- whose results count ----------------------------------------------------------------------


def test_a_protected_gate_ignores_a_result_a_pull_request_recorded(
    registry: RegistryServer, tmp_path: Path, serve: Any, retrained: Path
) -> None:
    """A pull request's gate records on its own digest; if that digest is then named as the
    baseline (or tagged stable by someone with push access), a trusted run does not believe it."""
    repo = Repo(registry, tmp_path / "service")
    pull = github_env(tmp_path, event="pull_request", ref="refs/pull/7/merge", sha="b" * 40,
                      pull=(7, "a" * 40), head_ref="feature")  # fmt: skip
    candidate = repo.candidate("pull-request")
    url = serve(retrained, RESPONSE_DELAY=str(DELAY))
    by_pull = repo.gate(url, candidate, env=pull)
    assert by_pull.code == 0, by_pull.failures
    assert "result recorded" not in by_pull.cases  # an untrusted run records only when asked
    assert repo.results(candidate) == []
    by_pull = repo.gate(url, candidate, "--record", env=pull)
    assert by_pull.cases["result recorded"]["passed"]
    (entry,) = repo.results(candidate)
    assert stored_result(registry, repo.name, entry)[1]["trusted"] is False

    trusted = repo.gate(url, candidate, "--baseline", candidate, "--no-record")
    assert trusted.code == 0
    assert "no gate result recorded by a trusted run" in trusted.cases["baseline"]["message"]
    assert "baseline: completes a famous line" not in trusted.cases
    # The failing direction: the pull request itself compares against what it recorded.
    again = repo.gate(url, candidate, "--baseline", candidate, "--no-record", env=pull)
    assert again.cases["baseline: completes a famous line"]["passed"]


def test_without_a_baseline_required_fails_and_a_missing_reference_is_named(
    registry: RegistryServer, tmp_path: Path, serve: Any
) -> None:
    repo = Repo(registry, tmp_path / "service")
    config = repo.root / "pipeline-kit.yaml"
    config.write_text(config.read_text() + "    required: true\n")
    url = serve()
    run = repo.gate(url, repo.stable, "--no-record")
    assert run.code == 1
    assert "has no gate result recorded" in run.cases["baseline"]["message"]
    assert "smoke.baseline.required is set" in run.cases["baseline"]["message"]
    missing = repo.gate(url, repo.stable, "--baseline", "production", "--no-record")
    assert f"{repo.image}:production does not exist" in missing.cases["baseline"]["message"]
    assert repo.results(repo.stable) == []  # --no-record


def test_an_unreachable_registry_fails_the_comparison_instead_of_passing_it(
    tmp_path: Path, serve: Any
) -> None:
    root = tmp_path / "service"
    root.mkdir()
    image = f"127.0.0.1:{free_port()}/gated/nowhere"  # nothing listens there
    (root / "pipeline-kit.yaml").write_text(CONFIG.format(image=image))
    run = run_smoke(root, "--url", serve(), "--digest", "sha256:" + "c" * 64, timeout=300)
    assert run.code == 1
    assert run.cases["baseline"]["passed"] is False
    assert "reading the baseline of" in run.cases["baseline"]["message"]
    assert "result recorded" not in run.cases
