"""A shared counter: read, increment, write. Correct under concurrency only with CAS.

On a CAS connector the write is conditional on the revision this handler
read; if another replica wrote in between, the write raises FileExistsError,
the message is requeued and the handler runs again from a fresh read.
"""

import json
import os


async def update_state_with_cas(payload: dict):
    state_path = "/state/shared/counter.json"

    if os.path.exists(state_path):
        with open(state_path) as f:
            state = json.load(f)
    else:
        state = {"count": 0}

    state["count"] += 1

    with open(state_path, "w") as f:
        json.dump(state, f)

    payload["new_count"] = state["count"]
    yield payload


def read_count(payload: dict) -> dict:
    with open("/state/shared/counter.json") as f:
        return json.load(f)
