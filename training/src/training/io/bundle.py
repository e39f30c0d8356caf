"""The serving bundle on disk: `model.onnx` + `manifest.json`, written all at once.

The bundle directory is built beside the target and swapped in with renames, so a reader (or
the server's hot reload) sees the old bundle or the whole new one, never a half-written one,
and a failed export leaves the previous bundle untouched.
"""

import hashlib
import shutil
import tempfile
from pathlib import Path
from typing import Any

from training.errors import PipelineError
from training.io import files

MODEL_FILE = "model.onnx"
MANIFEST_FILE = "manifest.json"


def write(directory: Path, model_bytes: bytes, manifest: dict[str, Any]) -> Path:
    """Write a bundle atomically into `directory` (replacing any previous bundle there).

    Args:
        directory: The bundle directory, e.g. data/model.
        model_bytes: The serialized ONNX graph.
        manifest: The manifest; its `sha256` must match `model_bytes`.

    Returns:
        The bundle directory.
    """
    if manifest.get("sha256") != hashlib.sha256(model_bytes).hexdigest():
        raise PipelineError("manifest sha256 does not match the model bytes")
    directory = directory.resolve()
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    retired = directory.with_name(f".{directory.name}.old")
    try:
        (staging / MODEL_FILE).write_bytes(model_bytes)
        files.write_json(manifest, staging / MANIFEST_FILE)
        shutil.rmtree(retired, ignore_errors=True)
        if directory.exists():
            directory.rename(retired)
        staging.rename(directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(retired, ignore_errors=True)
    return directory


def read(directory: Path) -> tuple[bytes, dict[str, Any]]:
    """Read and verify a bundle: both files present, sha256 equal to the manifest's.

    Raises:
        PipelineError: A file is missing or corrupt, or the hash does not match.
    """
    model_path, manifest_path = directory / MODEL_FILE, directory / MANIFEST_FILE
    for path in (model_path, manifest_path):
        if not path.is_file():
            raise PipelineError(f"{path}: bundle file not found")
    try:
        manifest: dict[str, Any] = files.read_json(manifest_path)
    except Exception as exc:  # msgspec raises DecodeError or ValidationError
        raise PipelineError(f"{manifest_path}: corrupt manifest: {exc}") from exc
    model_bytes = model_path.read_bytes()
    digest = hashlib.sha256(model_bytes).hexdigest()
    if manifest.get("sha256") != digest:
        raise PipelineError(
            f"{model_path}: sha256 {digest} differs from the manifest's {manifest.get('sha256')}"
        )
    return model_bytes, manifest
