"""The server on a read-only filesystem, as the image runs with `readOnlyRootFilesystem`.

`car-serve` runs in a private mount namespace (`unshare --mount`) where the whole filesystem,
the repository and its virtualenv included, is mounted read-only, the bundle is a read-only
mount, `HOME` does not exist and only `/tmp` is writable. Root ignores permission bits but not
a read-only mount (EROFS), so this holds for the test's root user too. The server must start,
serve, reload and stop cleanly there, and leave nothing behind in `/tmp`. A checkout under
`/tmp` itself (`git clone … /tmp/x`) stays visible at its own path inside the new `/tmp`,
read-only like the rest.
"""

from pathlib import Path

import httpx
import pytest

from ..programs import program
from .conftest import serve

pytestmark = [pytest.mark.integration, pytest.mark.needs("car-serve", "unshare")]

TOKEN = "read-only-reload-token"  # noqa: S105 - a test server's, on loopback
TMP = Path("/tmp")
CHECKOUT = Path(__file__).resolve().parents[2]

# Mounts, then car-serve ("$@"): the bundle read-only at /srv; a checkout under /tmp bound at
# its own path inside the scratch dir, which then becomes /tmp (with that bind: --rbind); the
# root filesystem read-only, then the checkout (/tmp, /srv and the checkout are mounts of their
# own and keep their flags).
READ_ONLY = """set -e
mount --bind "$BUNDLE" /srv && mount -o remount,bind,ro /srv
if [ -n "$CHECKOUT" ]; then mount --bind "$CHECKOUT" "$SCRATCH/$CHECKOUT_IN_TMP"; fi
mount --rbind "$SCRATCH" /tmp
mount -o remount,bind,ro /
if [ -n "$CHECKOUT" ]; then mount -o remount,bind,ro "$CHECKOUT"; fi
exec "$@"
"""


@pytest.mark.slow
def test_server_runs_with_read_only_repository_model_dir_and_home(
    tmp_path: Path, model_bundle: Path, car_payload: dict[str, object]
) -> None:
    """Read-only root FS, bundle and HOME: it serves and reloads, writing only under /tmp."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    in_tmp = CHECKOUT.relative_to(TMP) if CHECKOUT.is_relative_to(TMP) else None
    if in_tmp is not None:
        (scratch / in_tmp).mkdir(parents=True)  # the checkout's mount point
    mount_points = {in_tmp.parts[0]} if in_tmp is not None else set()
    launcher = [program("unshare"), "--mount", "--propagation=private", "sh", "-c", READ_ONLY, "sh"]
    with serve(
        model_bundle,
        tmp_path / "server.log",
        workers=2,
        launcher=launcher,
        BUNDLE=str(model_bundle),
        SCRATCH=str(scratch),
        CHECKOUT=str(CHECKOUT) if in_tmp is not None else "",
        CHECKOUT_IN_TMP=str(in_tmp or ""),
        MODEL_DIR="/srv",
        HOME="/nonexistent",
        RELOAD_TOKEN=TOKEN,
        RELOAD_POLL_S="0.2",
    ) as server:
        predicted = httpx.post(f"{server.url}/predict", json=car_payload, timeout=10)
        reloaded = httpx.post(
            f"{server.url}/admin/reload",
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=30,
        )
        metrics = server.metrics()
        written_while_serving = sorted({path.name for path in scratch.iterdir()} - mount_points)
    log = server.log.read_text()
    left_behind = sorted({path.name for path in scratch.iterdir()} - mount_points)
    print(f"\nread-only: written under /tmp {written_while_serving}, left {left_behind}")
    assert predicted.status_code == 200, predicted.text
    assert reloaded.status_code == 200, reloaded.text
    assert 'carprice_http_requests_total{route="/predict",status="200"} 1.0' in metrics
    assert all(name.startswith("carprice-metrics-") for name in written_while_serving)
    assert left_behind == []  # the metrics dir is removed at exit
    for trouble in ("Read-only file system", "Permission denied", "Traceback"):
        assert trouble not in log
