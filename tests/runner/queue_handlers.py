"""Handlers the queue tests run through ``asya-state run`` (runtime hooks active, a real pod).

Each records a message it applied as ``/state/done/<n>.json``, so a test can
compare the state with the lines the runner reported applied. Faults are
asked for in the payload; a fault meant to happen once leaves a marker file
(outside the state) so the retry goes through.
"""

import ctypes
import json
import os
import signal
import time

import psutil


def _first_time(payload: dict) -> bool:
    marker = payload.get("marker")
    if marker is None:
        return True
    try:
        with open(marker, "x"):
            return True
    except FileExistsError:
        return False


def _record(payload: dict) -> dict:
    with open(f"/state/done/{payload['n']}.json", "w") as f:
        json.dump(payload, f)
    return {"n": payload["n"]}


def crash(payload: dict) -> dict:
    """Kill this process as asked: ``exit`` (sys.exit), ``os_exit``, ``segv``, ``sigkill``."""
    how = payload.get("crash")
    if how is not None and _first_time(payload):
        if how == "exit":
            raise SystemExit(3)
        if how == "os_exit":
            os._exit(7)
        if how == "segv":
            ctypes.string_at(0)  # a crash in an extension
        if how == "sigkill":
            os.kill(os.getpid(), signal.SIGKILL)
    return _record(payload)


def _pod_connector() -> psutil.Process:
    """The connector process serving this pod's sockets (a child of the runner, as a sidecar)."""
    sockets = os.environ["ASYA_STATE_PROXY_SOCKET_DIR"].rstrip("/") + "/"
    for child in psutil.Process(os.getppid()).children():
        try:
            if child.environ().get("CONNECTOR_SOCKET", "").startswith(sockets):
                return child
        except psutil.Error:
            continue
    raise LookupError(f"no connector serving {sockets}")


def kill_connector(payload: dict) -> dict:
    """SIGKILL this pod's connector before writing (once), as an OOM kill would."""
    if payload.get("kill") and _first_time(payload):
        connector = _pod_connector()
        connector.kill()
        # Not our child: it stays a zombie until the runner reaps it.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if connector.status() == psutil.STATUS_ZOMBIE:
                    break
            except psutil.NoSuchProcess:
                break
            time.sleep(0.01)
    return _record(payload)


def record(payload: dict) -> dict:
    time.sleep(payload.get("pause", 0))
    return _record(payload)


def count_done(payload: dict) -> dict:
    return {"done": sorted(int(name.split(".")[0]) for name in os.listdir("/state/done"))}
