"""Stage 5, the smoke gate: send real requests in the model's protocol and judge the answers.

The CLI's ``--protocol`` choices, the schema's ``smoke.protocol`` enum and the docs come from
``PROTOCOLS`` (``pipeline_kit.catalog``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline_kit.catalog import Catalog

if TYPE_CHECKING:
    from pipeline_kit.smoke.protocols import SmokeProtocol

_HERE = "pipeline_kit.smoke.protocols"
PROTOCOLS: Catalog[SmokeProtocol] = Catalog(
    "protocol",
    {
        "openai-chat": f"{_HERE}:OpenAIChat",
        "openai-completions": f"{_HERE}:OpenAICompletions",
        "truss": f"{_HERE}:Truss",
        "kserve-v2": f"{_HERE}:KServeV2",
        "tgi": f"{_HERE}:TGI",
        "cog": f"{_HERE}:Cog",
        "http": f"{_HERE}:HttpProtocol",
    },
)
