"""One broken bundle, two readers: the server and `car-train` refuse it with one message.

Both read a bundle only through `shared_schema.bundle.read_verified`. The server is asked to
reload it (`POST /admin/reload`, whose 409 carries the refusal), `car-train drift` to score with
it as the served bundle (its error line); both must say exactly what `read_verified` says.
"""

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from litestar.testing import TestClient

from inference.app import create_app
from inference.settings import Settings
from shared_schema.bundle import MANIFEST_FILE, MODEL_FILE, InvalidBundleError, read_verified
from training.cli import main
from training.config import load_params

from .conftest import relocated, write_params

TOKEN = "t" * 32  # a test app's reload token, in process


def _bad_sha(bundle: Path) -> None:
    (bundle / MODEL_FILE).write_bytes(b"a copy stopped half-way")


def _bad_manifest(bundle: Path) -> None:
    manifest = json.loads((bundle / MANIFEST_FILE).read_text())
    del manifest["model_version"]
    (bundle / MANIFEST_FILE).write_text(json.dumps(manifest))


def _incompatible(bundle: Path) -> None:
    manifest = json.loads((bundle / MANIFEST_FILE).read_text())
    manifest["schema_version"] = "2.0.0"
    (bundle / MANIFEST_FILE).write_text(json.dumps(manifest))
    assert manifest["sha256"] == hashlib.sha256((bundle / MODEL_FILE).read_bytes()).hexdigest()


def _missing_file(bundle: Path) -> None:
    (bundle / MODEL_FILE).unlink()


def _server_refusal(bundle: Path) -> str:
    settings = Settings(model_dir=str(bundle), reload_poll_s=0.0, reload_token=TOKEN)
    with TestClient(create_app(settings)) as client:
        response = client.post("/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 409, response.text
    return str(response.json()["detail"])


def _training_refusal(params_file: Path, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    code = main(["--params", str(params_file), "drift", "--replay", "unread.parquet"])
    err = capsys.readouterr().err.strip()
    assert code == 1, err
    prefix = "car-train drift: error: "
    assert err.startswith(prefix), err
    return err.removeprefix(prefix)


@pytest.mark.parametrize(
    ("damage", "fault"),
    [
        (_bad_sha, "does not match the manifest's"),
        (_bad_manifest, "invalid manifest: Object missing required field `model_version`"),
        (_incompatible, "major versions differ"),
        (_missing_file, f"{MODEL_FILE}: bundle file not found"),
    ],
    ids=["bad_sha", "bad_manifest", "incompatible_version", "missing_file"],
)
def test_server_and_training_refuse_a_bundle_with_one_message(
    tmp_path: Path,
    bundle_writer: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
    damage: Callable[[Path], None],
    fault: str,
) -> None:
    """The server's reload and `car-train drift` refuse the bundle with read_verified's words."""
    params_file = write_params(relocated(tmp_path), tmp_path / "params.yaml")
    bundle = bundle_writer(load_params(params_file).paths.serving_bundle)
    damage(bundle)
    with pytest.raises(InvalidBundleError) as refused:
        read_verified(bundle)
    message = str(refused.value)
    assert fault in message
    assert _server_refusal(bundle) == message
    assert _training_refusal(params_file, capsys) == message
