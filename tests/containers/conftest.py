"""The images, built once per session with podman, and helpers to run them.

`containers/images.sh` builds them as `make images` does (a Debian base made with mmdebstrap
from this machine's apt mirror, the local uv binary); podman's layer cache makes the builds after
the first cheap. No registry is needed.
"""

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from ..programs import program
from ..training.conftest import REPO_ROOT

IMAGES_SH = REPO_ROOT / "containers" / "images.sh"


@dataclass(frozen=True)
class Images:
    """Local tags of the three images the Dockerfiles build."""

    api: str = "localhost/car-price-api:local"
    training: str = "localhost/car-price-training:local"
    proxy: str = "localhost/car-price-proxy:local"


def podman(*args: str, timeout: float = 120, check: bool = True) -> str:
    """Run `podman args`; its stdout, or a failure naming the command and its stderr."""
    result = subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        pytest.fail(f"podman {' '.join(args)} exited {result.returncode}: {result.stderr}")
    return result.stdout


def write_to_root(name: str) -> str:
    """Try to create a file in a running container's /; the error it met ("" if it wrote)."""
    done = subprocess.run(
        ["podman", "exec", name, "touch", "/written-by-test"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    return done.stderr if done.returncode != 0 else ""


def host_uids(name: str) -> set[tuple[int, int]]:
    """The (real uid, real gid) of every process of a container, from the host's /proc."""
    found = set()
    for pid in podman("top", name, "hpid").split()[1:]:
        status = Path(f"/proc/{pid}/status").read_text().splitlines()
        fields = dict(line.split(":", 1) for line in status)
        found.add((int(fields["Uid"].split()[0]), int(fields["Gid"].split()[0])))
    return found


def logs(name: str) -> str:
    """A container's stdout and stderr so far (`podman logs` keeps them apart: both, joined)."""
    result = subprocess.run(
        ["podman", "logs", name], capture_output=True, text=True, timeout=60, check=True
    )
    return result.stdout + result.stderr


def inspect(name: str, template: str) -> str:
    """`podman inspect --format template name`, stripped."""
    return podman("inspect", "--format", template, name).strip()


#: The longest the three builds may take together (a cold training image is most of it).
IMAGE_BUILD_S = 1800


@pytest.fixture(scope="session")
def images() -> Images:
    """The three images, built (or found current in podman's cache) once per session."""
    for tool in ("podman", "mmdebstrap"):
        program(tool)
    started = time.monotonic()
    built = subprocess.run(
        [str(IMAGES_SH)], capture_output=True, text=True, timeout=IMAGE_BUILD_S, check=False
    )
    if built.returncode != 0:
        pytest.fail(f"{IMAGES_SH} exited {built.returncode}:\n{built.stderr[-4000:]}")
    # The script's own lines: each image's build time and size (RUN steps' output aside).
    summary = [
        line for line in built.stderr.splitlines() if line.startswith(("base ", "localhost/"))
    ]
    print(f"\nimages ready in {time.monotonic() - started:.0f} s: " + "; ".join(summary))
    return Images()


def host_dir_for(uid: int, path: Path) -> Path:
    """`path`, created and owned by `uid` (a container's user), for a writable bind mount."""
    path.mkdir(parents=True, exist_ok=True)
    shutil.chown(path, uid, uid)
    return path
