"""The one publisher: content-addressed bundles, pointers written last, collection by pointer."""

import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from shared_schema.bundle import MANIFEST_FILE, MODEL_FILE, IncompleteBundleError, decode_manifest
from shared_schema.serving_folder import (
    BUNDLES_DIR,
    CURRENT,
    PREVIOUS,
    Pointer,
    encode_pointer,
    read_pointer,
    resolve,
)
from training.io import serving

Publish = Callable[..., Pointer]


def snapshot(folder: Path) -> dict[str, tuple[int, int, int]]:
    """Every entry under `folder` with its inode, size and modification time (ns)."""
    entries = {}
    for root, dirs, files in os.walk(folder):
        for name in [*dirs, *files]:
            path = Path(root, name)
            stat = path.stat()
            entries[str(path.relative_to(folder))] = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
    return entries


def test_publish_writes_the_bundle_then_the_pointer(
    tmp_path: Path, bundle_publisher: Publish
) -> None:
    """The bundle lands in bundles/<digest>; `current` names it with version and sha256."""
    folder = tmp_path / "model"
    pointer = bundle_publisher(folder, model_version="7")
    resolved = resolve(folder)
    manifest = decode_manifest((resolved.directory / MANIFEST_FILE).read_bytes())
    assert resolved.pointer == pointer == read_pointer(folder)
    assert resolved.directory.parent == folder / BUNDLES_DIR
    assert (pointer.model_version, pointer.sha256) == ("7", manifest.sha256)
    assert sorted(p.name for p in resolved.directory.iterdir()) == [MANIFEST_FILE, MODEL_FILE]
    assert read_pointer(folder, PREVIOUS) is None


def test_second_publish_of_the_same_version_touches_nothing(
    tmp_path: Path, bundle_publisher: Publish
) -> None:
    """Publishing what `current` names again leaves every file, inode and mtime as it was."""
    folder = tmp_path / "model"
    bundle_publisher(folder, model_version="1")
    bundle_publisher(folder, model_version="2")
    before = snapshot(folder)
    model_bytes = (resolve(folder).directory / MODEL_FILE).read_bytes()
    manifest = decode_manifest((resolve(folder).directory / MANIFEST_FILE).read_bytes())
    again = serving.publish(folder, model_bytes, manifest)
    assert not again.changed
    assert again.collected == ()
    assert snapshot(folder) == before


def test_previous_names_the_last_bundle_and_older_ones_are_collected(
    tmp_path: Path, bundle_publisher: Publish
) -> None:
    """After three publishes: current = v3, previous = v2, v1's bundle removed."""
    folder = tmp_path / "model"
    first = bundle_publisher(folder, model_version="1")
    second = bundle_publisher(folder, model_version="2")
    third = bundle_publisher(folder, model_version="3")
    assert read_pointer(folder, CURRENT) == third
    assert read_pointer(folder, PREVIOUS) == second
    assert not (folder / first.bundle).exists()
    assert sorted(p.name for p in (folder / BUNDLES_DIR).iterdir()) == sorted(
        Path(p.bundle).name for p in (second, third)
    )


def test_collection_keeps_what_any_pointer_file_names(
    tmp_path: Path, bundle_publisher: Publish
) -> None:
    """A `challenger` pointer keeps its bundle through later publishes; removed, it goes."""
    folder = tmp_path / "model"
    first = bundle_publisher(folder, model_version="1")
    (folder / "challenger").write_bytes(encode_pointer(first))
    bundle_publisher(folder, model_version="2")
    bundle_publisher(folder, model_version="3")
    assert (folder / first.bundle / MODEL_FILE).is_file()
    (folder / "challenger").unlink()
    fourth = bundle_publisher(folder, model_version="4")
    assert not (folder / first.bundle).exists()
    assert (folder / fourth.bundle).is_dir()


def test_an_unreadable_pointer_file_stops_collection(
    tmp_path: Path, bundle_publisher: Publish, caplog: pytest.LogCaptureFixture
) -> None:
    """A file that is not a pointer may still name a bundle: nothing is collected, it is named."""
    folder = tmp_path / "model"
    first = bundle_publisher(folder, model_version="1")
    bundle_publisher(folder, model_version="2")
    (folder / "challenger").write_text("{not json", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="training.io.serving"):
        bundle_publisher(folder, model_version="3")
    assert (folder / first.bundle).is_dir()
    assert f"collecting no bundle in {folder}: pointer {folder / 'challenger'}" in caplog.text


def test_an_interrupted_publish_is_finished_by_the_next(
    tmp_path: Path, bundle_publisher: Publish, caplog: pytest.LogCaptureFixture
) -> None:
    """A bundle dir left without its pointer is reused, verified, by the next publish of it."""
    folder, scratch = tmp_path / "model", tmp_path / "scratch"
    old = bundle_publisher(folder, model_version="1")
    stopped = bundle_publisher(scratch, model_version="2")
    # The state a publish leaves when it stops between the bundle's rename and `current`.
    shutil.copytree(scratch / stopped.bundle, folder / stopped.bundle)
    assert read_pointer(folder) == old
    with caplog.at_level(logging.INFO, logger="training.io.serving"):
        finished = bundle_publisher(folder, model_version="2")
    assert finished == stopped == read_pointer(folder)
    assert "is already written (a publish stopped before its pointer)" in caplog.text


def test_a_bundle_dir_holding_other_bytes_is_refused(
    tmp_path: Path, bundle_publisher: Publish
) -> None:
    """A damaged directory under the digest is never pointed to: the publish fails naming it."""
    folder, scratch = tmp_path / "model", tmp_path / "scratch"
    old = bundle_publisher(folder, model_version="1")
    damaged = bundle_publisher(scratch, model_version="2")
    shutil.copytree(scratch / damaged.bundle, folder / damaged.bundle)
    (folder / damaged.bundle / MODEL_FILE).write_bytes(b"not the model")
    with pytest.raises(IncompleteBundleError, match="does not match the manifest's"):
        bundle_publisher(folder, model_version="2")
    assert read_pointer(folder) == old


def test_a_plain_bundle_dir_resolves_to_itself(
    tmp_path: Path, bundle_writer: Callable[..., Path]
) -> None:
    """No `current` pointer: the folder is served as a plain bundle dir (tests, the export)."""
    plain = bundle_writer(tmp_path / "plain")
    assert resolve(plain).directory == plain
    assert resolve(plain).pointer is None
