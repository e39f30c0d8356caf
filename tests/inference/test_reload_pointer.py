"""The poller on a serving folder: it follows `current`, waits out a pending bundle, then fails."""

import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from shared_schema.bundle import MODEL_FILE
from shared_schema.serving_folder import CURRENT, Pointer, bundle_ref, encode_pointer

from ..conftest import wait_for
from .conftest import Client, MakeClient

Publish = Callable[..., Pointer]
POLL = 0.05
FAILURES = 'carprice_model_loads_total{outcome="failure"}'
SUCCESSES = 'carprice_model_loads_total{outcome="success"}'


def metric(client: Client, sample: str) -> float:
    """One sample of /metrics (0 when absent)."""
    match = re.search(rf"^{re.escape(sample)} (\S+)$", client.get("/metrics").text, re.M)
    return float(match.group(1)) if match else 0.0


def wait_until(condition: Callable[[], bool], what: str) -> None:
    """`wait_for` at this module's poll interval, 10 s at most."""
    wait_for(condition, what, timeout=10, poll_s=POLL)


def served(client: Client) -> str | None:
    """The version /ready answers (None while unready)."""
    version = client.get("/ready").json()["model_version"]
    return None if version is None else str(version)


def write_pointer(folder: Path, pointer: Pointer) -> None:
    """Replace `current` atomically, as the publisher does."""
    tmp = folder / ".current.test"
    tmp.write_bytes(encode_pointer(pointer))
    tmp.replace(folder / CURRENT)


def name_a_stale_view(folder: Path, whole: Path, pointer: Pointer) -> None:
    """Point `current` at a copy of `whole` whose model has not caught up with its manifest.

    What a network client may see for a moment: the new manifest, the model not yet.
    """
    shutil.copytree(whole, folder / pointer.bundle)
    (folder / pointer.bundle / MODEL_FILE).write_bytes(b"stale view")
    write_pointer(folder, pointer)


def test_poller_follows_the_pointer(
    make_client: MakeClient, tmp_path: Path, bundle_publisher: Publish
) -> None:
    """Each publish into the serving folder is served, with one success per publish."""
    folder = tmp_path / "model"
    bundle_publisher(folder, model_version="1")
    with make_client(folder, reload_poll_s=POLL) as client:
        assert served(client) == "1"
        bundle_publisher(folder, model_version="2", bias=-127.0)
        wait_until(lambda: served(client) == "2", "version 2")
        assert metric(client, SUCCESSES) == 2
        assert metric(client, FAILURES) == 0


def test_a_second_publish_of_the_same_version_triggers_no_reload(
    make_client: MakeClient, tmp_path: Path, bundle_publisher: Publish
) -> None:
    """Publishing what `current` already names again: no load at all, nothing counted."""
    folder = tmp_path / "model"
    bundle_publisher(folder, model_version="1")
    with make_client(folder, reload_poll_s=POLL) as client:
        bundle_publisher(folder, model_version="1")
        time.sleep(20 * POLL)
        assert metric(client, SUCCESSES) == 1
        assert metric(client, FAILURES) == 0


def test_an_interrupted_publish_keeps_the_old_model_and_counts_nothing(
    make_client: MakeClient, tmp_path: Path, bundle_publisher: Publish
) -> None:
    """A bundle dir whose pointer was never written is not looked at: v1 serves, no failure."""
    folder, scratch = tmp_path / "model", tmp_path / "scratch"
    bundle_publisher(folder, model_version="1")
    with make_client(folder, reload_poll_s=POLL, reload_grace_s=0.2) as client:
        stopped = bundle_publisher(scratch, model_version="2")
        shutil.copytree(scratch / stopped.bundle, folder / stopped.bundle)
        time.sleep(20 * POLL)
        assert served(client) == "1"
        assert metric(client, FAILURES) == 0
        assert metric(client, SUCCESSES) == 1


def test_a_pointer_to_a_missing_bundle_is_pending_then_a_counted_failure(
    make_client: MakeClient,
    tmp_path: Path,
    bundle_publisher: Publish,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Within the grace nothing is counted; after it one failure naming it; v1 keeps serving."""
    folder = tmp_path / "model"
    old = bundle_publisher(folder, model_version="1")
    missing = Pointer(bundle=bundle_ref("0" * 64), model_version="2", sha256=old.sha256)
    with make_client(folder, reload_poll_s=POLL, reload_grace_s=1.0) as client:
        write_pointer(folder, missing)
        wait_until(lambda: "model bundle pending" in caplog.text, "the pending bundle's log")
        assert metric(client, FAILURES) == 0
        wait_until(lambda: metric(client, FAILURES) == 1, "the counted failure")
        time.sleep(10 * POLL)
        assert metric(client, FAILURES) == 1  # counted once, not once per poll
        assert served(client) == "1"
    assert f"names {missing.bundle} (version 2), not whole here (yet)" in caplog.text
    assert "manifest.json: bundle file not found" in caplog.text
    assert "still pending after the grace, rejected" in caplog.text


def test_a_sha_mismatch_is_pending_and_loads_once_the_view_catches_up(
    make_client: MakeClient,
    tmp_path: Path,
    bundle_publisher: Publish,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A named bundle whose model disagrees with its manifest loads, uncounted, once it agrees."""
    folder = tmp_path / "model"
    bundle_publisher(folder, model_version="1")
    new = bundle_publisher(tmp_path / "scratch", model_version="2", bias=-127.0)
    whole = tmp_path / "scratch" / new.bundle
    with make_client(folder, reload_poll_s=POLL, reload_grace_s=30.0) as client:
        name_a_stale_view(folder, whole, new)
        wait_until(lambda: "model bundle pending" in caplog.text, "the pending bundle's log")
        shutil.copyfile(whole / MODEL_FILE, folder / new.bundle / MODEL_FILE)
        wait_until(lambda: served(client) == "2", "version 2")
        assert metric(client, FAILURES) == 0


def test_a_sha_mismatch_past_the_grace_is_a_counted_failure(
    make_client: MakeClient,
    tmp_path: Path,
    bundle_publisher: Publish,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A mismatch that outlasts the grace is counted once, named; the old model keeps serving."""
    folder = tmp_path / "model"
    bundle_publisher(folder, model_version="1")
    new = bundle_publisher(tmp_path / "scratch", model_version="2")
    with make_client(folder, reload_poll_s=POLL, reload_grace_s=0.5) as client:
        name_a_stale_view(folder, tmp_path / "scratch" / new.bundle, new)
        wait_until(lambda: metric(client, FAILURES) == 1, "the counted failure")
        assert served(client) == "1"
    assert "still pending after the grace, rejected" in caplog.text
    assert "does not match the manifest's" in caplog.text


def test_a_corrupt_pointer_is_a_counted_failure_naming_it(
    make_client: MakeClient,
    tmp_path: Path,
    bundle_publisher: Publish,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """`current` that is not a pointer: counted once, named; the old model keeps serving."""
    folder = tmp_path / "model"
    bundle_publisher(folder, model_version="1")
    with make_client(folder, reload_poll_s=POLL) as client:
        (folder / ".current.bad").write_text('{"bundle": "../../etc"}', encoding="utf-8")
        (folder / ".current.bad").replace(folder / CURRENT)
        wait_until(lambda: metric(client, FAILURES) == 1, "the counted failure")
        time.sleep(10 * POLL)
        assert metric(client, FAILURES) == 1
        assert served(client) == "1"
    assert f"pointer {folder / CURRENT} is not a valid pointer" in caplog.text


def test_a_server_started_before_the_first_publish_serves_it(
    make_client: MakeClient, tmp_path: Path, bundle_publisher: Publish
) -> None:
    """No serving folder yet (a pod before the first publish): unready, uncounted, then served."""
    folder = tmp_path / "model"
    with make_client(folder, reload_poll_s=POLL) as client:
        not_ready = client.get("/ready")
        assert not_ready.status_code == 503
        assert f"no model published in {folder} yet" in not_ready.text
        bundle_publisher(folder, model_version="1")
        wait_until(lambda: served(client) == "1", "the first publish")
        # Waiting for the first publish is a new deployment's normal state, not a failed load.
        assert metric(client, FAILURES) == 0
