"""Writing the serving bundle (`shared_schema.bundle` defines it and reads it: `read_verified`).

Each file is written beside its target and renamed into place, the model first and the
manifest last: a reader sees whole files only, and a model whose manifest has not caught up yet
fails its sha256 check instead of being served under the wrong manifest (the server's hot
reload waits for both). Files are replaced inside the directory rather than swapping the
directory, so a bind mount of it (docker-compose, a Kubernetes volume) sees the new bundle.
"""

import hashlib
from pathlib import Path

from shared_schema.bundle import MANIFEST_FILE, MODEL_FILE, Manifest, encode_manifest
from training.errors import PipelineError
from training.io import files


def write(directory: Path, model_bytes: bytes, manifest: Manifest) -> Path:
    """Write a bundle into `directory`, replacing any previous bundle there file by file.

    Args:
        directory: The bundle directory (`paths.exported_bundle`, `paths.serving_bundle`).
        model_bytes: The serialized ONNX graph.
        manifest: The manifest; its `sha256` must match `model_bytes`.

    Returns:
        The bundle directory.

    Raises:
        PipelineError: The manifest's sha256 is not the model's; nothing is written then.
    """
    if manifest.sha256 != hashlib.sha256(model_bytes).hexdigest():
        raise PipelineError("manifest sha256 does not match the model bytes")
    directory.mkdir(parents=True, exist_ok=True)
    with files.atomic_path(directory / MODEL_FILE) as tmp:
        tmp.write_bytes(model_bytes)
    with files.atomic_path(directory / MANIFEST_FILE) as tmp:
        tmp.write_bytes(encode_manifest(manifest))
    return directory
