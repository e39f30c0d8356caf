"""The challenger pointer and rollback: staged beside the champion, refused when unservable."""

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from shared_schema.bundle import MANIFEST_FILE, MODEL_FILE, IncompatibleBundleError, decode_manifest
from shared_schema.serving_folder import (
    BUNDLES_DIR,
    CHALLENGER,
    CURRENT,
    PREVIOUS,
    Pointer,
    read_pointer,
)
from training.errors import PipelineError
from training.io import serving

Publish = Callable[..., Pointer]
Stage = Callable[..., serving.Publication]


@pytest.fixture
def stage_bundle(bundle_writer: Callable[..., Path]) -> Stage:
    """Stage a test bundle as the challenger, as `car-train stage` does with a registry's."""

    def stage(folder: Path, **bundle: Any) -> serving.Publication:
        with tempfile.TemporaryDirectory(prefix="test-bundle-") as scratch:
            plain = bundle_writer(Path(scratch), **bundle)
            model_bytes = (plain / MODEL_FILE).read_bytes()
            manifest = decode_manifest((plain / MANIFEST_FILE).read_bytes())
        return serving.stage(folder, model_bytes, manifest)

    return stage


def pointer_bytes(folder: Path) -> dict[str, bytes]:
    """Every pointer file's bytes, by name."""
    names = (CURRENT, PREVIOUS, CHALLENGER)
    return {name: (folder / name).read_bytes() for name in names if (folder / name).exists()}


def test_stage_names_the_challenger_and_leaves_the_champion(
    tmp_path: Path, bundle_publisher: Publish, stage_bundle: Stage
) -> None:
    """`challenger` names the staged bundle; `current` and `previous` keep their bytes."""
    folder = tmp_path / "model"
    bundle_publisher(folder, model_version="1")
    bundle_publisher(folder, model_version="2")
    before = pointer_bytes(folder)
    staged = stage_bundle(folder, model_version="3", bias=1.0)
    assert staged.changed
    assert read_pointer(folder, CHALLENGER) == staged.pointer
    assert (folder / staged.pointer.bundle / MODEL_FILE).is_file()
    after = pointer_bytes(folder)
    assert {k: after[k] for k in (CURRENT, PREVIOUS)} == before
    assert not stage_bundle(folder, model_version="3", bias=1.0).changed


def test_an_incompatible_challenger_is_refused_and_the_champion_untouched(
    tmp_path: Path, bundle_publisher: Publish, stage_bundle: Stage
) -> None:
    """A bundle `read_verified` refuses: stage raises, no pointer or bundle is left of it."""
    folder = tmp_path / "model"
    bundle_publisher(folder, model_version="1")
    before = pointer_bytes(folder)
    bundles = sorted((folder / BUNDLES_DIR).iterdir())
    with pytest.raises(IncompatibleBundleError, match="schema"):
        stage_bundle(folder, model_version="2", schema_version="99.0.0")
    assert pointer_bytes(folder) == before
    assert sorted((folder / BUNDLES_DIR).iterdir()) == bundles


def test_staging_the_champion_is_refused(
    tmp_path: Path, bundle_publisher: Publish, stage_bundle: Stage
) -> None:
    """The bundle `current` names cannot be its own challenger: the message says so."""
    folder = tmp_path / "model"
    bundle_publisher(folder, model_version="1")
    with pytest.raises(PipelineError, match="already the champion"):
        stage_bundle(folder, model_version="1")
    assert not (folder / CHALLENGER).exists()


def test_the_challenger_bundle_survives_later_publishes(
    tmp_path: Path, bundle_publisher: Publish, stage_bundle: Stage
) -> None:
    """Publishes that collect never remove the bundle `challenger` names; unstaged, it goes."""
    folder = tmp_path / "model"
    bundle_publisher(folder, model_version="1")
    staged = stage_bundle(folder, model_version="9", bias=2.0).pointer
    for version in ("2", "3", "4"):
        bundle_publisher(folder, model_version=version)
    assert (folder / staged.bundle / MODEL_FILE).is_file()
    assert serving.unstage(folder) == staged
    bundle_publisher(folder, model_version="5")
    assert not (folder / staged.bundle).exists()


def test_rollback_serves_previous_and_withdraws_the_challenger(
    tmp_path: Path, bundle_publisher: Publish, stage_bundle: Stage
) -> None:
    """After rollback `current` is the old `previous`, `previous` the rolled-back version."""
    folder = tmp_path / "model"
    first = bundle_publisher(folder, model_version="1")
    second = bundle_publisher(folder, model_version="2")
    stage_bundle(folder, model_version="3", bias=1.0)
    rolled = serving.rollback(folder)
    assert rolled.pointer == first == read_pointer(folder, CURRENT)
    assert read_pointer(folder, PREVIOUS) == second
    assert not (folder / CHALLENGER).exists()


def test_rollback_to_a_collected_bundle_is_refused(
    tmp_path: Path, bundle_publisher: Publish, stage_bundle: Stage
) -> None:
    """`previous` naming a bundle that is gone: refused naming it, `current` unchanged."""
    folder = tmp_path / "model"
    first = bundle_publisher(folder, model_version="1")
    bundle_publisher(folder, model_version="2")
    shutil.rmtree(folder / first.bundle)
    before = pointer_bytes(folder)
    with pytest.raises(PipelineError, match=f"roll back to version 1: its bundle {first.bundle}"):
        serving.rollback(folder)
    assert pointer_bytes(folder) == before


def test_rollback_without_previous_is_refused(
    tmp_path: Path, bundle_publisher: Publish, stage_bundle: Stage
) -> None:
    """A folder published once has nothing to roll back to: the error says so."""
    folder = tmp_path / "model"
    bundle_publisher(folder, model_version="1")
    with pytest.raises(PipelineError, match="no previous pointer"):
        serving.rollback(folder)
