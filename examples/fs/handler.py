"""Counts visits per user in /state/visits/<user>.json — the handler of the per-backend examples."""

import json


def process(payload: dict) -> dict:
    path = f"/state/visits/{payload['user']}.json"
    try:
        with open(path) as f:
            visits = json.load(f)["visits"]
    except FileNotFoundError:
        visits = 0
    with open(path, "w") as f:
        json.dump({"visits": visits + 1}, f)
    return {"user": payload["user"], "visits": visits + 1}
