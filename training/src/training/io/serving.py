"""The one publisher: a bundle into the serving folder (`shared_schema.serving_folder`).

Every writer of the served model goes through `publish`: the `publish` stage (`fetch-model`),
`car-train retrain` and the drift DAG's `publish` task (all through `training.lifecycle.publish`).

The order makes every moment servable: the bundle directory is written under a temporary name
and renamed whole, then `previous`, then `current`, each pointer by temporary file, fsync and
rename; the folder itself is never removed or replaced, so a pod's mount or a bind mount of it
keeps seeing every publish. A publish stopped before `current` changes leaves a bundle no
pointer names: the server never looks at it, and the next publish reuses or collects it.

Publishing the bundle `current` already names changes nothing on disk (no file is written, so
no server reloads). `stage` writes a bundle the same way but names it in `challenger` (the
server scores it beside the champion, in shadow or as a canary) and leaves `current` and
`previous` alone; `rollback` points `current` back at `previous` and removes `previous` (the
version rolled back is served again only when staged or published anew), refused when that
bundle is gone. Publishers take an exclusive lock on `.publish.lock` in the folder, so two
of them never interleave their pointer writes or collect each other's bundle in progress.
"""

import contextlib
import fcntl
import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from shared_schema.bundle import (
    MANIFEST_FILE,
    MODEL_FILE,
    InvalidBundleError,
    Manifest,
    encode_manifest,
    read_verified,
)
from shared_schema.serving_folder import (
    BUNDLES_DIR,
    CANARY_SHARE_FILE,
    CHALLENGER,
    CURRENT,
    PREVIOUS,
    CanaryShare,
    Pointer,
    PointerError,
    bundle_ref,
    decode_pointer,
    encode_canary_share,
    encode_pointer,
    read_pointer,
)
from training.errors import PipelineError

log = logging.getLogger(__name__)

#: The publishers' lock file (a dot file: neither a pointer nor a bundle).
LOCK_FILE: Final = ".publish.lock"
#: The files in the serving folder that are not pointers: a plain bundle's, the canary share.
_NOT_POINTERS: Final = (MODEL_FILE, MANIFEST_FILE, CANARY_SHARE_FILE)


@dataclass(frozen=True)
class Publication:
    """What `publish` did: the pointer `current` holds, and whether anything changed."""

    pointer: Pointer
    changed: bool
    #: Bundles removed because no pointer named them any more (`bundles/<digest>`).
    collected: tuple[str, ...] = ()


def publish(folder: Path, model_bytes: bytes, manifest: Manifest) -> Publication:
    """Publish a bundle: its own directory under `bundles/`, then the pointers, then collect.

    Args:
        folder: The serving folder (`paths.serving_bundle`); created if missing, never removed.
        model_bytes: The serialized ONNX graph.
        manifest: Its manifest; `sha256` must match `model_bytes`.

    Returns:
        The pointer now in `current`, and whether this call changed it.

    Raises:
        PipelineError: The manifest does not match the model, or an existing bundle directory
            of the same digest holds another manifest; `current` is left as it was.
        InvalidBundleError: An existing bundle directory of the same digest fails
            `read_verified`; `current` is left as it was.
    """
    folder.mkdir(parents=True, exist_ok=True)
    with _locked(folder):
        current = _current_or_none(folder)
        pointer, written = _place_bundle(folder, model_bytes, manifest)
        if not written and current != pointer:
            log.info("%s is already written (a publish stopped before its pointer)", pointer.bundle)
        changed = current != pointer
        if changed:
            if current is not None and current.bundle != pointer.bundle:
                _write_pointer(folder, PREVIOUS, current)
            _write_pointer(folder, CURRENT, pointer)
        collected = collect(folder)
    return Publication(pointer, changed, collected)


def stage(folder: Path, model_bytes: bytes, manifest: Manifest) -> Publication:
    """Stage a challenger: its bundle under `bundles/`, verified, then the `challenger` pointer.

    `current` and `previous` are never touched: the champion keeps serving whatever happens.
    The bundle is read back with `read_verified` (the server's own reader) before the pointer
    is written, so a bundle the server would refuse is refused here; a bundle directory this
    call wrote for it is removed again.

    Returns:
        The pointer `challenger` holds now, and whether this call changed it.

    Raises:
        PipelineError: The manifest does not match the model, or the bundle is the champion.
        InvalidBundleError: `read_verified` refuses the bundle (incompatible schema, say).
    """
    folder.mkdir(parents=True, exist_ok=True)
    with _locked(folder):
        pointer, written = _place_bundle(folder, model_bytes, manifest)
        try:
            read_verified(folder / pointer.bundle)
        except InvalidBundleError:
            if written:
                shutil.rmtree(folder / pointer.bundle)
            raise
        if _current_or_none(folder) == pointer:
            raise PipelineError(
                f"{folder}: version {pointer.model_version} is already the champion (current)"
            )
        changed = _pointer_or_none(folder, CHALLENGER) != pointer
        if changed:
            _write_pointer(folder, CHALLENGER, pointer)
        collected = collect(folder)
    return Publication(pointer, changed, collected)


def unstage(folder: Path, version: str | None = None) -> Pointer | None:
    """Remove the `challenger` pointer (its bundle goes at the next collection unless named).

    Its canary share file goes with it. With `version`, only a pointer naming that version is
    removed: one staged since by someone else stays.

    Returns:
        The pointer removed, or None when there was no challenger (or another version).
    """
    with _locked(folder):
        pointer = _pointer_or_none(folder, CHALLENGER)
        if version is not None and (pointer is None or pointer.model_version != version):
            return None
        (folder / CHALLENGER).unlink(missing_ok=True)
        (folder / CANARY_SHARE_FILE).unlink(missing_ok=True)
        _fsync_dir(folder)
    return pointer


def write_canary_share(folder: Path, canary: CanaryShare) -> None:
    """Write the canary share file atomically, as a pointer is (the server re-reads it)."""
    with _locked(folder):
        _write_file(folder, CANARY_SHARE_FILE, encode_canary_share(canary))


def previous_pointer(folder: Path) -> Pointer | None:
    """The `previous` pointer (the rollback target), or None.

    Raises:
        PipelineError: The file is there but is not a pointer.
    """
    return _pointer_or_none(folder, PREVIOUS)


def rollback(folder: Path, expected: str | None = None) -> Publication:
    """Point `current` back at `previous`, then remove `previous`.

    No pointer names the version rolled back afterwards (its bundle is collected): a second
    rollback is refused for want of a `previous` rather than serving the bad version again, and
    it is served again only when staged or published anew. A challenger pointer (and its canary
    share file) is removed too: whatever was being tried is withdrawn with it. With `expected`,
    `current` must still name that version when the lock is held: a champion published since
    the caller judged one is never rolled back unjudged.

    Returns:
        The pointer `current` holds now (the old `previous`).

    Raises:
        PipelineError: `current` names another version than `expected` (both named), there is
            no `previous` pointer, or its bundle is gone or fails `read_verified` (the message
            names it); nothing is changed then.
    """
    with _locked(folder):
        served = _current_or_none(folder)
        if expected is not None and (served is None or served.model_version != expected):
            now = "nothing" if served is None else f"version {served.model_version}"
            raise PipelineError(
                f"{folder}: refusing to roll back version {expected}: {CURRENT} names {now} "
                "now (published since it was judged)"
            )
        target = _pointer_or_none(folder, PREVIOUS)
        if target is None:
            raise PipelineError(f"{folder}: no {PREVIOUS} pointer: nothing to roll back to")
        try:
            read_verified(folder / target.bundle)
        except InvalidBundleError as error:
            raise PipelineError(
                f"{folder}: refusing to roll back to version {target.model_version}: "
                f"its bundle {target.bundle} is not servable: {error}"
            ) from error
        _write_pointer(folder, CURRENT, target)
        (folder / PREVIOUS).unlink(missing_ok=True)
        (folder / CHALLENGER).unlink(missing_ok=True)
        (folder / CANARY_SHARE_FILE).unlink(missing_ok=True)
        collected = collect(folder)
    return Publication(target, True, collected)


def collect(folder: Path) -> tuple[str, ...]:
    """Remove the bundles (and stale temporaries) no pointer file in `folder` names.

    Every regular file directly in the folder whose name does not start with a dot and is not a
    plain bundle's file or the canary share file counts as a pointer. If one of them is not a
    valid pointer, nothing is removed: a pointer this code cannot read may still name a bundle
    someone serves. Call it with the publishers' lock held (`publish` does).

    Returns:
        The removed bundles, as `bundles/<name>`.
    """
    named = set()
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(".") or entry.name in _NOT_POINTERS:
            continue
        if not entry.is_file():
            continue
        try:
            named.add(decode_pointer(entry.read_bytes(), entry).bundle)
        except PointerError as error:
            log.warning("collecting no bundle in %s: %s", folder, error)
            return ()
    bundles = folder / BUNDLES_DIR
    removed = []
    for entry in sorted(bundles.iterdir()) if bundles.is_dir() else ():
        ref = f"{BUNDLES_DIR}/{entry.name}"
        if ref in named:
            continue
        try:
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        except OSError as error:
            # After `current` moved, the publish has happened: a bundle another uid wrote (the
            # host's `make train` beside the training pod's uid 10001) is left, not a failure.
            log.warning("kept %s, which no pointer names: cannot remove it: %s", ref, error)
            continue
        log.info("removed %s: no pointer names it", ref)
        removed.append(ref)
    for entry in folder.glob(".*.tmp"):
        entry.unlink(missing_ok=True)  # a pointer write that stopped before its rename
    return tuple(removed)


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    with (folder / LOCK_FILE).open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _current_or_none(folder: Path) -> Pointer | None:
    try:
        return read_pointer(folder, CURRENT)
    except PointerError as error:
        # The publish about to write `current` is the repair; say what it replaces.
        log.warning("replacing an unreadable pointer: %s", error)
        return None


def _pointer_or_none(folder: Path, name: str) -> Pointer | None:
    try:
        return read_pointer(folder, name)
    except PointerError as error:
        raise PipelineError(str(error)) from error


def _place_bundle(folder: Path, model_bytes: bytes, manifest: Manifest) -> tuple[Pointer, bool]:
    """Write the bundle directory (or check the one already there).

    Returns:
        The pointer naming it, and whether this call wrote it.
    """
    if manifest.sha256 != hashlib.sha256(model_bytes).hexdigest():
        raise PipelineError("manifest sha256 does not match the model bytes")
    manifest_bytes = encode_manifest(manifest)
    ref = bundle_ref(hashlib.sha256(manifest_bytes).hexdigest())
    pointer = Pointer(bundle=ref, model_version=manifest.model_version, sha256=manifest.sha256)
    target = folder / ref
    if target.is_dir():
        _check_existing(target, manifest_bytes)
        return pointer, False
    _write_bundle(target, model_bytes, manifest_bytes)
    return pointer, True


def _check_existing(target: Path, manifest_bytes: bytes) -> None:
    """A directory of this digest must hold exactly this bundle (verified, never rewritten)."""
    if read_verified(target).manifest_bytes != manifest_bytes:
        raise PipelineError(f"{target}: holds another manifest than its digest names")


def _write_bundle(target: Path, model_bytes: bytes, manifest_bytes: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name[:12]}.", suffix=".tmp", dir=target.parent))
    try:
        for name, data in ((MODEL_FILE, model_bytes), (MANIFEST_FILE, manifest_bytes)):
            _write_synced(tmp / name, data)
        # mkdtemp makes the directory private (0700); the server's non-root user reads it.
        tmp.chmod(0o755)
        _fsync_dir(tmp)
        tmp.rename(target)
        _fsync_dir(target.parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def _write_pointer(folder: Path, name: str, pointer: Pointer) -> None:
    _write_file(folder, name, encode_pointer(pointer))


def _write_file(folder: Path, name: str, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        _write_synced(tmp_path, data)
        tmp_path.replace(folder / name)
        _fsync_dir(folder)
    finally:
        tmp_path.unlink(missing_ok=True)


def _write_synced(path: Path, data: bytes) -> None:
    with path.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    path.chmod(0o644)


def _fsync_dir(path: Path) -> None:
    # The rename itself is durable only once the directory holding the entry is synced.
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
