"""Cache expensive results for an hour, keyed by the input's hash."""

import hashlib
import json
import os
from datetime import UTC, datetime, timedelta

MAX_AGE = timedelta(hours=1)


async def expensive_operation(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


async def cached_computation(payload: dict):
    cache_key = payload.get("input_hash") or hashlib.sha1(payload["input"].encode()).hexdigest()
    cache_path = f"/state/cache/{cache_key}.json"

    if os.path.exists(cache_path):
        with open(cache_path) as f:
            cached = json.load(f)
        cached_at = datetime.fromisoformat(cached["timestamp"])
        if datetime.now(UTC) - cached_at < MAX_AGE:
            payload["result"] = cached["result"]
            payload["cached"] = True
            yield payload
            return

    result = await expensive_operation(payload["input"])
    with open(cache_path, "w") as f:
        json.dump({"result": result, "timestamp": datetime.now(UTC).isoformat()}, f)

    payload["result"] = result
    payload["cached"] = False
    yield payload
