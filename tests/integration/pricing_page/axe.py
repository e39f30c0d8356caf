"""axe-core, the accessibility checker, from the npm registry: pinned, cached, never committed."""

import hashlib
import io
import os
import tarfile
from pathlib import Path

import httpx
import pytest

AXE_VERSION = "4.14.1"
#: sha256 of the registry's tarball (its sha512 `integrity` agreed when it was pinned).
AXE_SHA256 = "e6b0ce02b84d892e2e33e403485e7f3d6c29e2be6df65daf44d89ba564139745"
AXE_URL = f"https://registry.npmjs.org/axe-core/-/axe-core-{AXE_VERSION}.tgz"
#: The registry answers in well under a second when it is reachable at all.
FETCH_TIMEOUT_S = 10.0


def fetch(tarball: Path) -> None:
    """Download the pinned tarball into `tarball`; skip the test when the registry is unreachable.

    The partial download sits beside the cache, so the rename that completes it stays on one
    file system (and a cut-off download never takes the cache's name).
    """
    partial = tarball.with_name(f"{tarball.name}.{os.getpid()}.partial")
    try:
        response = httpx.get(AXE_URL, timeout=FETCH_TIMEOUT_S, follow_redirects=True)
    except httpx.TransportError as error:
        pytest.skip(f"axe-core: the npm registry cannot be reached ({AXE_URL}: {error!r})")
    response.raise_for_status()
    partial.write_bytes(response.content)
    partial.replace(tarball)


def axe_source() -> str:
    """axe.min.js of the pinned axe-core, from a cache (filled from the registry when empty).

    A cached tarball whose checksum is not the pinned one (cut off, or changed) is fetched
    again; a fresh download that does not match fails the test.
    """
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "car-price"
    cache.mkdir(parents=True, exist_ok=True)
    tarball = cache / f"axe-core-{AXE_VERSION}.tgz"
    if not tarball.exists():
        fetch(tarball)
    data = tarball.read_bytes()
    if hashlib.sha256(data).hexdigest() != AXE_SHA256:
        tarball.unlink()
        fetch(tarball)
        data = tarball.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    assert digest == AXE_SHA256, f"{AXE_URL}: sha256 {digest}, pinned {AXE_SHA256}"
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        member = archive.extractfile("package/axe.min.js")
        assert member is not None
        return member.read().decode()
