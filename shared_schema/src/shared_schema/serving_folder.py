"""The serving folder, defined once: where published bundles live and the pointers naming them.

`car-train` publishes into it (`training.io.serving`), the server serves from it (`inference`).
A pod or a bind mount mounts the folder itself, so nothing ever deletes or replaces it; every
change happens inside it:

* `bundles/<digest>/`: one bundle (`model.onnx` + `manifest.json`, `shared_schema.bundle`) per
  published manifest. `<digest>` is the sha256 of the manifest's bytes, which hold the model's
  sha256: the same bundle always lands in the same directory, and a written directory never
  changes (it is written under a temporary name and renamed whole);
* `current`: the pointer the server follows, a `Pointer` in JSON, written last and atomically
  (temporary file, fsync, rename). Until it names a bundle, that bundle is not published;
* `previous`: the pointer `current` held before the last change, the rollback target (and the
  bundle a pod that read the old `current` a moment ago is still loading). Any other pointer
  file (`challenger`, `car-train stage`'s) is a regular file beside them: a bundle is collected only
  once no pointer file names it;
* `canary_share`: not a pointer: the share of requests the challenger answers, and which
  challenger version it is for (`CanaryShare`), written atomically as the pointers are by
  `car-train watch` stepping the canary up its schedule, and re-read by the server with them.

A folder without `current` but with the bundle files directly in it (a plain bundle, as the
export writes) is served as it is: tests, benchmarks and the exported candidate use that.
"""

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Final

import msgspec
from msgspec import Meta

#: The serving folder's default place, relative to the project root: the server's `MODEL_DIR`
#: default (`inference.settings`) imports it, and the files that cannot import it are checked
#: against it (tests/shared_schema/test_serving_folder.py): params.yaml's `paths.serving_bundle`
#: (where the pipeline publishes), docker-compose's bind mount, the image's and k8s' `MODEL_DIR`.
#: Its home is here, in the contract both the publisher (training) and the server (inference)
#: import: params.yaml is the pipeline's, which the server never reads, and the server's
#: settings are not importable by training.
DEFAULT_SERVING_FOLDER: Final = "data/model"
#: The folder of content-addressed bundles inside the serving folder.
BUNDLES_DIR: Final = "bundles"
#: The pointer the server follows.
CURRENT: Final = "current"
#: The pointer `current` held before the last publish that changed it: the rollback target.
PREVIOUS: Final = "previous"
#: The challenger's pointer, written by `car-train stage`: a bundle the server scores beside
#: `current` (in shadow, or answering a canary share), never collected while named.
CHALLENGER: Final = "challenger"
#: The canary share file (`CanaryShare`), beside the pointers; never read as a pointer.
CANARY_SHARE_FILE: Final = "canary_share"
#: A pointer names a bundle as `bundles/<64 hex>`, relative to the serving folder (never a path
#: outside it).
BUNDLE_REF_PATTERN: Final = rf"^{BUNDLES_DIR}/[0-9a-f]{{64}}$"


class PointerError(ValueError):
    """A pointer file (or the canary share file) that cannot be read: the message names it."""


class Pointer(msgspec.Struct, frozen=True, kw_only=True):
    """A pointer file: which bundle it names, and what the bundle must hold.

    Unknown keys are ignored when reading, so a newer publisher may add keys.

    Attributes:
        bundle: The bundle directory, `bundles/<digest>`, relative to the serving folder.
        model_version: The manifest's `model_version` (what `/ready` will answer).
        sha256: The manifest's `sha256` of `model.onnx`.
    """

    bundle: Annotated[str, Meta(pattern=BUNDLE_REF_PATTERN)]
    model_version: Annotated[str, Meta(min_length=1)]
    sha256: Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$")]


_pointer_decoder: Final = msgspec.json.Decoder(Pointer)


class CanaryShare(msgspec.Struct, frozen=True, kw_only=True):
    """The canary share file: the share of requests a challenger version answers, since when.

    Attributes:
        challenger_version: The challenger's `model_version` this share is for; a server holding
            another challenger ignores the file.
        share: Share of requests, 0 to 1, the challenger answers instead of the champion.
        step: The entry of params.yaml's `rollout.canary_steps` this share is (0 the first).
        since: When this step began (UTC): the schedule's hold counts from it.
    """

    challenger_version: Annotated[str, Meta(min_length=1)]
    share: Annotated[float, Meta(ge=0.0, le=1.0)]
    step: Annotated[int, Meta(ge=0)]
    since: datetime


_canary_decoder: Final = msgspec.json.Decoder(CanaryShare)


def encode_canary_share(canary: CanaryShare) -> bytes:
    """The canary share file's bytes: indented JSON."""
    return msgspec.json.format(msgspec.json.encode(canary), indent=2) + b"\n"


def read_canary_share(folder: Path) -> CanaryShare | None:
    """The serving folder's canary share file; None when there is none.

    Raises:
        PointerError: The file is there but is not a `CanaryShare` (the message names it).
        OSError: The file cannot be read.
    """
    path = folder / CANARY_SHARE_FILE
    try:
        data = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        return _canary_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as error:
        raise PointerError(f"{path} is not a valid canary share file: {error}") from error


def bundle_ref(digest: str) -> str:
    """The pointer's `bundle` for a bundle whose manifest bytes hash to `digest`."""
    return f"{BUNDLES_DIR}/{digest}"


def encode_pointer(pointer: Pointer) -> bytes:
    """A pointer file's bytes: indented JSON, keys in the Struct's order (the same for equals)."""
    return msgspec.json.format(msgspec.json.encode(pointer), indent=2) + b"\n"


def decode_pointer(data: bytes, source: Path | str = CURRENT) -> Pointer:
    """Parse a pointer file's bytes.

    Raises:
        PointerError: Not JSON, or a key missing or malformed; the message names `source`.
    """
    try:
        return _pointer_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as error:
        raise PointerError(f"pointer {source} is not a valid pointer: {error}") from error


def read_pointer(folder: Path, name: str = CURRENT) -> Pointer | None:
    """The pointer file `name` of a serving folder; None when there is none.

    Raises:
        PointerError: The file is there but is not a pointer.
        OSError: The file cannot be read (permissions, say).
    """
    path = folder / name
    try:
        data = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return decode_pointer(data, path)


@dataclass(frozen=True, slots=True)
class Resolved:
    """What a serving folder serves: the bundle directory, and the pointer that named it."""

    directory: Path
    #: None for a plain bundle directory (no `current` pointer).
    pointer: Pointer | None


def resolve(folder: Path) -> Resolved:
    """The bundle a serving folder serves now: the one `current` names, else the folder itself.

    The folder itself is a plain bundle directory (or nothing yet: its files are then missing,
    which the reader reports).

    Raises:
        PointerError: `current` is there but is not a pointer.
        OSError: `current` cannot be read.
    """
    pointer = read_pointer(folder)
    if pointer is None:
        return Resolved(folder, None)
    return Resolved(folder / pointer.bundle, pointer)


__all__ = [
    "BUNDLES_DIR",
    "BUNDLE_REF_PATTERN",
    "CANARY_SHARE_FILE",
    "CHALLENGER",
    "CURRENT",
    "DEFAULT_SERVING_FOLDER",
    "PREVIOUS",
    "CanaryShare",
    "Pointer",
    "PointerError",
    "Resolved",
    "bundle_ref",
    "decode_pointer",
    "encode_canary_share",
    "encode_pointer",
    "read_canary_share",
    "read_pointer",
    "resolve",
]
