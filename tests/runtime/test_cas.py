"""Compare-and-set as the handler sees it, against fs-buffered-cas (and LWW for contrast).

Another replica is a separate process with its own runtime, exactly as
another pod would be.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

import asya_state_runtime
from tests.runtime.conftest import Connectors, handler_env, run_handler


def other_replica_writes(connectors: Connectors, path: str, value: object) -> None:
    run_handler(
        connectors,
        f"""
        import json
        with open({path!r}, "w") as f:
            json.dump({value!r}, f)
        """,
    )


def load(path: str) -> object:
    with open(path) as f:
        return json.load(f)


def save(path: str, value: object) -> None:
    with open(path, "w") as f:
        json.dump(value, f)


def test_a_write_based_on_a_stale_read_conflicts(hooks: Connectors, ns: str) -> None:
    path = f"/cas/{ns}/counter.json"
    save(path, {"count": 1})
    state = load(path)
    other_replica_writes(hooks, path, {"count": 10})
    with pytest.raises(FileExistsError) as caught:
        save(path, {"count": 2})
    assert caught.value.filename == path
    assert load(path) == {"count": 10}
    # A retry starts from a fresh read and wins.
    with asya_state_runtime.revision_scope():
        state = load(path)
        assert isinstance(state, dict)
        save(path, {"count": state["count"] + 1})
    assert load(path) == {"count": 11}


def test_read_missing_then_a_racing_creator_conflicts(hooks: Connectors, ns: str) -> None:
    path = f"/cas/{ns}/session.json"
    with pytest.raises(FileNotFoundError):
        load(path)
    other_replica_writes(hooks, path, ["theirs"])
    with pytest.raises(FileExistsError):
        save(path, ["mine"])
    assert load(path) == ["theirs"]


def test_exists_false_then_a_racing_creator_conflicts(hooks: Connectors, ns: str) -> None:
    path = f"/cas/{ns}/config.json"
    assert not os.path.exists(path)
    other_replica_writes(hooks, path, {"by": "them"})
    with pytest.raises(FileExistsError):
        save(path, {"by": "me"})


def test_consecutive_writes_of_one_process_chain_their_revisions(
    hooks: Connectors, ns: str
) -> None:
    path = f"/cas/{ns}/log.json"
    save(path, [1])
    save(path, [1, 2])
    assert load(path) == [1, 2]
    save(path, [1, 2, 3])
    other_replica_writes(hooks, path, ["x"])
    with pytest.raises(FileExistsError):
        save(path, [1, 2, 3, 4])


def test_keys_never_read_are_written_unconditionally(hooks: Connectors, ns: str) -> None:
    path = f"/cas/{ns}/blind.json"
    other_replica_writes(hooks, path, "theirs")
    save(path, "mine")
    assert load(path) == "mine"


def test_a_delete_based_on_a_stale_read_conflicts(hooks: Connectors, ns: str) -> None:
    path = f"/cas/{ns}/doomed.json"
    save(path, 1)
    load(path)
    other_replica_writes(hooks, path, 2)
    with pytest.raises(FileExistsError):
        os.remove(path)
    assert load(path) == 2


def test_read_modify_write_in_r_plus_mode_is_conditional(hooks: Connectors, ns: str) -> None:
    path = f"/cas/{ns}/rplus.txt"
    save(path, "a")
    f = open(path, "r+")  # noqa: SIM115 - closed inside pytest.raises
    f.seek(0, os.SEEK_END)
    f.write("b")
    other_replica_writes(hooks, path, "z")
    with pytest.raises(FileExistsError):
        f.close()
    assert load(path) == "z"


def test_etag_attribute_exposes_the_revision(hooks: Connectors, ns: str) -> None:
    path = f"/cas/{ns}/tagged.json"
    save(path, 1)
    first = os.getxattr(path, "user.asya.etag")
    other_replica_writes(hooks, path, 2)
    second = os.getxattr(path, "user.asya.etag")
    assert first != second
    seen_by_other = run_handler(
        hooks, f"import os; print(os.getxattr({path!r}, 'user.asya.etag').decode())"
    ).stdout.strip()
    assert seen_by_other.encode() == second


def test_last_writer_wins_connectors_never_conflict(hooks: Connectors, ns: str) -> None:
    path = f"/lww/{ns}/counter.json"
    save(path, 1)
    load(path)
    other_replica_writes(hooks, path, 2)
    save(path, 3)
    missing = f"/lww/{ns}/new.json"
    assert not os.path.exists(missing)
    other_replica_writes(hooks, missing, "theirs")
    save(missing, "mine")
    assert load(path) == 3
    assert load(missing) == "mine"


def test_concurrent_increments_lose_no_update(hooks: Connectors, ns: str) -> None:
    """Four replicas increment one counter 10 times each, retrying conflicts from a fresh read."""
    path = f"/cas/{ns}/shared.json"
    save(path, 0)
    code = f"""
        import json, asya_state_runtime
        done = conflicts = 0
        while done < 10:
            try:
                with asya_state_runtime.revision_scope():
                    with open({path!r}) as f:
                        value = json.load(f)
                    with open({path!r}, "w") as f:
                        json.dump(value + 1, f)
                done += 1
            except FileExistsError:
                conflicts += 1
        print(conflicts)
        """
    replicas = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(code)],
            env=handler_env(hooks),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    for replica in replicas:
        _, err = replica.communicate(timeout=120)
        assert replica.returncode == 0, err
    assert load(path) == 40
