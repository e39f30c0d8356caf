"""The challenger pointer and rollback: staged beside the champion, refused when unservable."""

import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared_schema.bundle import MODEL_FILE, IncompatibleBundleError, read_verified
from shared_schema.serving_folder import (
    BUNDLES_DIR,
    CANARY_SHARE_FILE,
    CHALLENGER,
    CURRENT,
    PREVIOUS,
    Pointer,
    read_canary_share,
    read_pointer,
)
from training.config import CanaryStep
from training.errors import PipelineError
from training.io import serving
from training.jobs.watch import step_canary

Publish = Callable[..., Pointer]
Stage = Callable[..., Pointer]

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def pointer_bytes(folder: Path) -> dict[str, bytes]:
    """Every pointer file's bytes, by name."""
    names = (CURRENT, PREVIOUS, CHALLENGER)
    return {name: (folder / name).read_bytes() for name in names if (folder / name).exists()}


def test_stage_names_the_challenger_and_leaves_the_champion(
    tmp_path: Path, bundle_publisher: Publish, bundle_stager: Stage
) -> None:
    """`challenger` names the staged bundle; `current` and `previous` keep their bytes."""
    folder = tmp_path / "model"
    bundle_publisher(folder, model_version="1")
    bundle_publisher(folder, model_version="2")
    before = pointer_bytes(folder)
    staged = bundle_stager(folder, model_version="3", bias=1.0)
    assert read_pointer(folder, CHALLENGER) == staged
    assert (folder / staged.bundle / MODEL_FILE).is_file()
    after = pointer_bytes(folder)
    assert {k: after[k] for k in (CURRENT, PREVIOUS)} == before
    staged_bytes = after[CHALLENGER]
    assert bundle_stager(folder, model_version="3", bias=1.0) == staged
    assert pointer_bytes(folder)[CHALLENGER] == staged_bytes


def test_an_incompatible_challenger_is_refused_and_the_champion_untouched(
    tmp_path: Path, bundle_publisher: Publish, bundle_stager: Stage
) -> None:
    """A bundle `read_verified` refuses: stage raises, no pointer or bundle is left of it."""
    folder = tmp_path / "model"
    bundle_publisher(folder, model_version="1")
    before = pointer_bytes(folder)
    bundles = sorted((folder / BUNDLES_DIR).iterdir())
    with pytest.raises(IncompatibleBundleError, match="schema"):
        bundle_stager(folder, model_version="2", schema_version="99.0.0")
    assert pointer_bytes(folder) == before
    assert sorted((folder / BUNDLES_DIR).iterdir()) == bundles


def test_without_its_check_stage_names_an_incompatible_challenger(
    tmp_path: Path,
    bundle_publisher: Publish,
    bundle_stager: Stage,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Broken copy: `stage` without its `read_verified` names a bundle the server refuses."""
    folder = tmp_path / "model"
    bundle_publisher(folder, model_version="1")
    monkeypatch.setattr(serving, "read_verified", lambda _directory: None)
    staged = bundle_stager(folder, model_version="2", schema_version="99.0.0")
    assert read_pointer(folder, CHALLENGER) == staged
    with pytest.raises(IncompatibleBundleError, match="schema"):
        read_verified(folder / staged.bundle)  # what every server then does with it


def test_staging_the_champion_is_refused(
    tmp_path: Path, bundle_publisher: Publish, bundle_stager: Stage
) -> None:
    """The bundle `current` names cannot be its own challenger: the message says so."""
    folder = tmp_path / "model"
    bundle_publisher(folder, model_version="1")
    with pytest.raises(PipelineError, match="already the champion"):
        bundle_stager(folder, model_version="1")
    assert not (folder / CHALLENGER).exists()


def test_the_challenger_bundle_survives_later_publishes(
    tmp_path: Path, bundle_publisher: Publish, bundle_stager: Stage
) -> None:
    """Publishes that collect never remove the bundle `challenger` names; unstaged, it goes."""
    folder = tmp_path / "model"
    bundle_publisher(folder, model_version="1")
    staged = bundle_stager(folder, model_version="9", bias=2.0)
    for version in ("2", "3", "4"):
        bundle_publisher(folder, model_version=version)
    assert (folder / staged.bundle / MODEL_FILE).is_file()
    assert serving.unstage(folder) == staged
    bundle_publisher(folder, model_version="5")
    assert not (folder / staged.bundle).exists()


def test_rollback_serves_previous_and_withdraws_the_challenger(
    tmp_path: Path, bundle_publisher: Publish, bundle_stager: Stage
) -> None:
    """After rollback `current` is the old `previous`; no pointer names the rolled-back 2."""
    folder = tmp_path / "model"
    first = bundle_publisher(folder, model_version="1")
    second = bundle_publisher(folder, model_version="2")
    bundle_stager(folder, model_version="3", bias=1.0)
    rolled = serving.rollback(folder)
    assert rolled.pointer == first == read_pointer(folder, CURRENT)
    assert not (folder / PREVIOUS).exists()
    assert not (folder / CHALLENGER).exists()
    assert not (folder / second.bundle).exists()  # collected: nothing can serve it again
    with pytest.raises(PipelineError, match="no previous pointer"):
        serving.rollback(folder)  # a second rollback never brings 2 back
    assert read_pointer(folder, CURRENT) == first


def test_rollback_to_a_collected_bundle_is_refused(
    tmp_path: Path, bundle_publisher: Publish, bundle_stager: Stage
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


def test_without_its_check_rollback_serves_a_collected_bundle(
    tmp_path: Path, bundle_publisher: Publish, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Broken copy: `rollback` without its `read_verified` points `current` at nothing."""
    folder = tmp_path / "model"
    first = bundle_publisher(folder, model_version="1")
    bundle_publisher(folder, model_version="2")
    shutil.rmtree(folder / first.bundle)
    monkeypatch.setattr(serving, "read_verified", lambda _directory: None)
    serving.rollback(folder)
    assert read_pointer(folder, CURRENT) == first
    assert not (folder / first.bundle).exists()


def test_rollback_of_a_version_no_longer_served_is_refused(
    tmp_path: Path, bundle_publisher: Publish
) -> None:
    """Version 2 judged, 3 published since: rollback expecting 2 is refused naming both."""
    folder = tmp_path / "model"
    bundle_publisher(folder, model_version="1")
    bundle_publisher(folder, model_version="2")
    bundle_publisher(folder, model_version="3")
    before = pointer_bytes(folder)
    with pytest.raises(PipelineError, match="roll back version 2: current names version 3"):
        serving.rollback(folder, expected="2")
    assert pointer_bytes(folder) == before


def test_without_the_expected_version_rollback_rolls_back_an_unjudged_champion(
    tmp_path: Path, bundle_publisher: Publish
) -> None:
    """Broken copy: no expected version, and the champion published after the judging goes."""
    folder = tmp_path / "model"
    bundle_publisher(folder, model_version="1")
    judged = bundle_publisher(folder, model_version="2")
    bundle_publisher(folder, model_version="3")
    assert serving.rollback(folder).pointer == judged


def test_rollback_without_previous_is_refused(
    tmp_path: Path, bundle_publisher: Publish, bundle_stager: Stage
) -> None:
    """A folder published once has nothing to roll back to: the error says so."""
    folder = tmp_path / "model"
    bundle_publisher(folder, model_version="1")
    with pytest.raises(PipelineError, match="no previous pointer"):
        serving.rollback(folder)


def test_watch_steps_the_canary_share_file_and_collection_ignores_it(
    tmp_path: Path, bundle_publisher: Publish, bundle_stager: Stage
) -> None:
    """The file is written, stepped when due, passed over by collection; unstaging removes it."""
    folder = tmp_path / "model"
    champion = bundle_publisher(folder, model_version="1")
    staged = bundle_stager(folder, model_version="2", bias=1.0)
    steps = [CanaryStep(share=0.1, hold_minutes=10), CanaryStep(share=0.5, hold_minutes=10)]
    first = step_canary(folder, steps, "2", T0, True)
    assert first is not None
    assert (first.step, first.share) == (0, 0.1)
    assert read_canary_share(folder) == first
    assert step_canary(folder, steps, "2", T0 + timedelta(minutes=5), True) == first
    for version in ("3", "4"):  # collection still runs: version 1's bundle goes
        bundle_publisher(folder, model_version=version)
    assert not (folder / champion.bundle).exists()
    assert (folder / staged.bundle / MODEL_FILE).is_file()
    assert read_canary_share(folder) == first
    due = T0 + timedelta(minutes=10)
    assert step_canary(folder, steps, "2", due, False) == first  # due, but no answers judged
    stepped = step_canary(folder, steps, "2", due, True)
    assert stepped is not None
    assert (stepped.step, stepped.share) == (1, 0.5)
    assert read_canary_share(folder) == stepped
    serving.unstage(folder)
    assert read_canary_share(folder) is None


def test_an_unreadable_canary_share_file_is_refused_naming_it(
    tmp_path: Path, bundle_publisher: Publish, bundle_stager: Stage
) -> None:
    """A canary share file that is not one: the watcher stops, naming it; nothing is written."""
    folder = tmp_path / "model"
    bundle_publisher(folder, model_version="1")
    bundle_stager(folder, model_version="2", bias=1.0)
    (folder / CANARY_SHARE_FILE).write_text('{"share": 2}', encoding="utf-8")
    steps = [CanaryStep(share=0.1, hold_minutes=10)]
    with pytest.raises(PipelineError, match=f"{folder / CANARY_SHARE_FILE} is not a valid canary"):
        step_canary(folder, steps, "2", T0, True)
    assert (folder / CANARY_SHARE_FILE).read_text(encoding="utf-8") == '{"share": 2}'
