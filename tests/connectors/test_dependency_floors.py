"""The connectors' dependency floors: the oldest versions pyproject allows are versions we ran.

pyproject's connector extras (``connector``, ``fs``, ``s3``, ``gcs``,
``redis``, ``nats``) say ``name>=floor``. The dev environment installs the
newest releases, so nothing else runs the floors. The soak test here
installs the project into a fresh virtualenv with every direct dependency
pinned at its floor (pip resolves what they pull in), from the configured
package index, and runs each backend's connector process from it against
the real test servers: write, read, stat, list, a compare-and-swap
conflict, a missing key, a directory. It skips, saying why, only when pip
reaches no index at all. The default run checks that the pins it installs
are exactly the floors pyproject declares.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.version import Version

from asya_state_cli.connector_process import ConnectorProcess
from asya_state_connectors.client import HttpConnector
from asya_state_connectors.errors import Conflict, IsADirectory, NotFound
from asya_state_connectors.interface import WriteCondition
from tests.conformance.helpers import get, put
from tests.fixtures.connectors import env_fixture_name
from tests.function.test_sdk_floor import unreachable_index

ROOT = Path(__file__).resolve().parents[2]
EXTRAS = ("connector", "fs", "s3", "gcs", "redis", "nats")
CONNECTORS = (
    "fs-buffered-cas",
    "s3-buffered-cas",
    "gcs-buffered-cas",
    "redis-buffered-cas",
    "nats-kv-buffered-cas",
)


def floors() -> dict[str, str]:
    """``name[extras]`` -> floor for every third-party requirement of the connector extras."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    found: dict[str, str] = {}
    for extra in EXTRAS:
        for requirement in extras[extra]:
            if requirement.startswith("asya-state-proxy"):
                continue
            match = re.fullmatch(r"([A-Za-z0-9_.-]+(?:\[[a-z,]+\])?)>=(\S+)", requirement)
            assert match, f"{extra}: {requirement!r} has no floor (name>=version)"
            found[match.group(1)] = match.group(2)
    return found


def _bare(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name.partition("[")[0]).lower()


def test_every_connector_dependency_has_a_floor_the_soak_test_installs() -> None:
    pins = floors()
    assert {_bare(name) for name in pins} == {
        "uvloop",
        "httptools",
        "boto3",
        "google-cloud-storage",
        "redis",
        "nats-py",
    }


def _pip(python: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(python), "-m", "pip", *args, "--retries", "1", "--timeout", "60"],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if done.returncode != 0 and (why := unreachable_index(done.stderr)):
        pytest.skip(f"no package index reachable to install the connector floors: {why}")
    assert done.returncode == 0, f"pip {args[:3]}: {done.stderr[-2000:]}"
    return done


@pytest.fixture(scope="module")
def floor_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv with the project's connector extras installed at their floors."""
    base = tmp_path_factory.mktemp("connector-floors")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    pins = floors()
    constraints = base / "floors.txt"
    constraints.write_text("".join(f"{_bare(n)}=={v}\n" for n, v in pins.items()))
    _pip(python, "install", "-q", "-c", str(constraints), f"{ROOT}[{','.join(EXTRAS[1:])}]")
    frozen = _pip(python, "freeze").stdout
    versions = {_bare(k): v for k, v in re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)$", frozen, re.M)}
    for name, floor in pins.items():
        got = versions.get(_bare(name))
        assert got is not None, f"{name} is not installed"
        assert Version(got) == Version(floor), f"{name} installed as {got}"
    return python


@pytest.mark.soak
@pytest.mark.parametrize("name", CONNECTORS)
async def test_each_connector_serves_at_its_dependency_floors(
    request: pytest.FixtureRequest, floor_python: Path, socket_dir: Path, name: str
) -> None:
    env: dict[str, str] = request.getfixturevalue(env_fixture_name(name))
    env = {**env, "STATE_PREFIX": f"floors-{name}/"}
    # Runs the connector's command line with the floor virtualenv's Python.
    wrapper = ["sh", "-c", 'shift; exec "$0" "$@"', str(floor_python)]
    with ConnectorProcess(name, socket_dir / f"floor-{name}.sock", env, wrapper=wrapper) as process:
        client = HttpConnector(process.socket_path)
        await client.open()
        try:
            first = await put(client, "dir/state.json", b'{"n": 1}')
            assert await get(client, "dir/state.json") == b'{"n": 1}'
            assert (await client.stat("dir/state.json")).size == 8
            assert [e.key for e in (await client.list("dir/")).entries] == ["dir/state.json"]
            await put(
                client, "dir/state.json", b'{"n": 2}', condition=WriteCondition(if_match=first.etag)
            )
            with pytest.raises(Conflict):
                await put(
                    client, "dir/state.json", b"{}", condition=WriteCondition(if_match=first.etag)
                )
            with pytest.raises(NotFound):
                await client.stat("dir/missing.json")
            with pytest.raises(IsADirectory):
                await get(client, "dir")
            await client.delete("dir/state.json")
            with pytest.raises(NotFound):
                await get(client, "dir/state.json")
        finally:
            await client.close()
