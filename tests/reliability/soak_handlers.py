"""The soak workload, run inside each pod with the runtime hooks active.

``run`` starts ``threads`` threads; each does ``iterations`` mixed
operations on its own keys (write, read-verify, list, delete, append-free
overwrite) and CAS increments of one shared counter, keeping a ledger of the
sha256 of what it last wrote. Expected CAS conflicts are counted, anything
else is an error.
"""

import hashlib
import json
import os
import random
import threading


def _increment(path: str) -> bool:
    """One read-modify-write of the shared counter; False on a CAS conflict."""
    try:
        with open(path) as f:
            count = json.load(f)["count"]
    except FileNotFoundError:
        count = 0
    try:
        with open(path, "w") as f:
            json.dump({"count": count + 1}, f)
        return True
    except FileExistsError:
        return False


def _worker(pod: int, thread: int, iterations: int, seed: int, result: dict) -> None:
    import asya_state_runtime

    rng = random.Random(seed)
    ledger: dict[str, str | None] = {}
    stats = {"ops": 0, "conflicts": 0, "increments": 0, "errors": []}
    base = f"/state/soak/p{pod}t{thread}"
    for i in range(iterations):
        with asya_state_runtime.revision_scope():  # each iteration is a fresh "message"
            _operate(base, rng, ledger, stats, i)
    result[thread] = {"ledger": ledger, **stats}


def _operate(base: str, rng: random.Random, ledger: dict, stats: dict, i: int) -> None:
    """One operation of iteration ``i``: a write, a read-verify, a listing, a delete or an increment."""
    name = f"{base}/k{rng.randrange(8)}.bin"
    op = rng.random()
    try:
        if op < 0.45:
            body = os.urandom(rng.choice([16, 1024, 64 * 1024, 300 * 1024]))
            with open(name, "wb") as f:
                f.write(body)
            ledger[name] = hashlib.sha256(body).hexdigest()
        elif op < 0.75:
            expected = ledger.get(name)
            try:
                with open(name, "rb") as f:
                    got = hashlib.sha256(f.read()).hexdigest()
            except FileNotFoundError:
                got = None
            if got != expected:
                stats["errors"].append(f"{name}: read {got}, ledger {expected}")
        elif op < 0.85:
            listed = set(os.listdir(base)) if os.path.isdir(base) else set()
            wanted = {k.rsplit("/", 1)[1] for k, v in ledger.items() if v is not None}
            if listed != wanted:
                stats["errors"].append(f"listdir {sorted(listed)} != ledger {sorted(wanted)}")
        elif op < 0.9:
            if ledger.get(name) is not None:
                os.remove(name)
                ledger[name] = None
        else:
            if _increment("/state/soak/counter.json"):
                stats["increments"] += 1
            else:
                stats["conflicts"] += 1
        stats["ops"] += 1
    except Exception as exc:  # anything but a counted CAS conflict is a failure
        stats["errors"].append(f"iteration {i}: {type(exc).__name__}: {exc}")


def run(payload: dict) -> dict:
    results: dict = {}
    threads = [
        threading.Thread(
            target=_worker,
            args=(payload["pod"], t, payload["iterations"], payload["seed"] * 1000 + t, results),
        )
        for t in range(payload["threads"])
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"threads": {str(k): v for k, v in results.items()}}
