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


def axe_source(tmp_path_factory: pytest.TempPathFactory) -> str:
    """axe.min.js of the pinned axe-core, from a cache (filled from the registry when empty)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "car-price"
    tarball = cache / f"axe-core-{AXE_VERSION}.tgz"
    if not tarball.exists():
        cache.mkdir(parents=True, exist_ok=True)
        partial = tmp_path_factory.mktemp("axe") / tarball.name
        partial.write_bytes(httpx.get(AXE_URL, timeout=60).raise_for_status().content)
        partial.replace(tarball)
    data = tarball.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    assert digest == AXE_SHA256, f"{tarball}: sha256 {digest}, pinned {AXE_SHA256}"
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        member = archive.extractfile("package/axe.min.js")
        assert member is not None
        return member.read().decode()
