"""A full disk under the fs connector, as the handler sees it: OSError(ENOSPC), nothing lost.

The connector runs on a real, tiny filesystem of its own: a 128 KiB tmpfs
mounted in a private mount namespace (``unshare``), so nothing is mounted
for anyone else and the mount goes away with the process. Every write path
of the connector (a small body on the event loop, one in a worker thread, a
streamed one) must report ENOSPC (HTTP 507), name the path, and leave the
previous version of the file intact.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import asya_state_runtime
from asya_state_cli.connector_process import ConnectorProcess

KiB = 1024
FS_SIZE = 128 * KiB
# Run the command after "--" with a fresh tmpfs of FS_SIZE on $0.
MOUNT_THEN_EXEC = 'mount -t tmpfs -o size="$1" tmpfs "$0" && shift && exec "$@"'


def _private_tmpfs_wrapper(directory: Path) -> list[str]:
    """The wrapper command, or skip when this machine cannot give a process its own mounts."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("unshare (util-linux) is not installed")
    wrapper = [unshare, "--map-root-user", "--mount", "sh", "-c", MOUNT_THEN_EXEC, str(directory)]
    probe = subprocess.run(
        [*wrapper, str(FS_SIZE), "true"], capture_output=True, text=True, timeout=30
    )
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a private tmpfs here: {probe.stderr.strip()}")
    return [*wrapper, str(FS_SIZE)]


@pytest.fixture(scope="module")
def full_sockets() -> Iterator[Path]:
    """The socket directory of ``full.sock``: fs-buffered-cas on a 128 KiB filesystem."""
    with tempfile.TemporaryDirectory(prefix="asya-full-", dir="/tmp") as work:
        state, sockets = Path(work) / "state", Path(work) / "sockets"
        state.mkdir()
        process = ConnectorProcess(
            "fs-buffered-cas",
            sockets / "full.sock",
            {"STATE_DIR": str(state)},
            wrapper=_private_tmpfs_wrapper(state),
        ).start()
        try:
            yield sockets
        finally:
            process.stop()


@pytest.fixture
def full_mount(full_sockets: Path) -> Iterator[str]:
    asya_state_runtime.install("full:/full", socket_dir=str(full_sockets))
    try:
        with asya_state_runtime.revision_scope():
            yield "/full"
    finally:
        asya_state_runtime.uninstall()


@pytest.mark.parametrize(
    "size",
    [200 * KiB, 600 * KiB, 3 * 1024 * KiB],
    ids=["on-the-loop", "in-a-thread", "streamed"],
)
def test_a_full_disk_is_enospc_naming_the_path_and_keeps_the_old_version(
    full_mount: str, size: int
) -> None:
    path = f"{full_mount}/doc-{size}.bin"
    with open(path, "wb") as f:
        f.write(b"version 1")
    with pytest.raises(OSError) as caught, open(path, "wb") as f:  # noqa: PT011 - errno checked
        f.write(os.urandom(size))
    assert caught.value.errno == errno.ENOSPC
    assert caught.value.filename == path
    assert "no_space" in str(caught.value)
    with open(path, "rb") as f:
        assert f.read() == b"version 1"
    # The failed write's temporary file is gone: the space is there again.
    with open(path, "wb") as f:
        f.write(b"version 2")
    with open(path, "rb") as f:
        assert f.read() == b"version 2"
    os.remove(path)
