"""The model server's contract, from the config's ``service`` section.

Smoke tests, previews and rendered manifests all read the same values, so the probe that
Kubernetes runs and the endpoint the gate waits on cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline_kit.config.durations import parse_duration
from pipeline_kit.config.loader import Config

DEFAULT_PORT = 8000
DEFAULT_READY_PATH = "/health/ready"
DEFAULT_LIVE_PATH = "/health/live"
DEFAULT_MAX_LOAD_TIME = "15m"
DEFAULT_MODEL_PATH = "/models"


@dataclass(frozen=True)
class ServiceSpec:
    port: int = DEFAULT_PORT
    ready_path: str = DEFAULT_READY_PATH
    live_path: str = DEFAULT_LIVE_PATH
    max_load_seconds: int = 15 * 60
    model_path: str = DEFAULT_MODEL_PATH
    model: str | None = None  # None: the image's last path component, else "model"

    @classmethod
    def from_config(cls, config: Config) -> ServiceSpec:
        section = config.section("service")
        image_name = config.image.rsplit("/", 1)[-1] if config.image else None
        return cls(
            port=int(section.get("port", DEFAULT_PORT)),
            ready_path=str(section.get("ready_path", DEFAULT_READY_PATH)),
            live_path=str(section.get("live_path", DEFAULT_LIVE_PATH)),
            max_load_seconds=parse_duration(
                str(section.get("max_load_time", DEFAULT_MAX_LOAD_TIME)),
                what=f"{config.where('service', 'max_load_time')}: service.max_load_time",
            ),
            model_path=str(section.get("model_path", DEFAULT_MODEL_PATH)),
            model=str(section["model"]) if "model" in section else image_name,
        )
