"""Stage 5, the smoke gate: send real requests in the model's protocol and judge the answers."""
