"""The challenger's loads: a failure counted, retried once its files change, as the champion's."""

import asyncio
from pathlib import Path
from typing import Any

import msgspec
import pytest

from inference.challenger import ChallengerHolder
from inference.metrics import Metrics
from inference.model import BundleError, load_bundle
from inference.rollout_metrics import CHALLENGER_LOADS, RolloutMetrics
from inference.settings import Settings
from shared_schema.serving_folder import CHALLENGER, encode_pointer, read_pointer


def loads(metrics: Metrics, outcome: str) -> float:
    """`carprice_challenger_loads_total{outcome}` now."""
    value = metrics.registry.get_sample_value(CHALLENGER_LOADS, {"outcome": outcome})
    return value or 0.0


Seen = list[tuple[str | None, float]]


async def refreshes(holder: ChallengerHolder, metrics: Metrics, times: int) -> Seen:
    """Refresh `times` times: (held version, failures) after each."""
    seen: Seen = []
    for _ in range(times):
        await holder.refresh()
        held = None if holder.current is None else holder.current.version
        seen.append((held, loads(metrics, "failure")))
    return seen


async def hide_refresh_restore(folder: Path, **settings: Any) -> Seen:
    """Refresh with the staged bundle dir hidden (twice), then restored: (held, failures) each."""
    metrics = Metrics()
    holder = ChallengerHolder(
        Settings(model_dir=str(folder), reload_poll_s=0.0, **settings), RolloutMetrics(metrics)
    )
    pointer = read_pointer(folder, CHALLENGER)
    assert pointer is not None
    bundle = folder / pointer.bundle
    hidden = bundle.with_name("hidden")
    bundle.rename(hidden)
    seen = await refreshes(holder, metrics, 2)
    hidden.rename(bundle)
    seen += await refreshes(holder, metrics, 1)
    held = seen[-1][0]
    assert loads(metrics, "success") == (1 if held else 0)
    return seen


def test_a_failed_challenger_is_counted_once_and_held_once_its_bundle_is_back(
    rollout_folder: Path,
) -> None:
    """No grace: the missing bundle is one counted failure, not retried alike; restored, held."""
    seen = asyncio.run(hide_refresh_restore(rollout_folder, reload_grace_s=0.0))
    assert seen == [(None, 1), (None, 1), ("2", 1)]


def test_a_challenger_bundle_not_there_yet_is_pending_within_the_grace(
    rollout_folder: Path,
) -> None:
    """Within RELOAD_GRACE_S a named bundle not there is pending: not counted, then held."""
    seen = asyncio.run(hide_refresh_restore(rollout_folder, reload_grace_s=90.0))
    assert seen == [(None, 0), (None, 0), ("2", 0)]


def test_without_the_retry_a_failed_challenger_is_never_held_again(
    rollout_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Broken copy, the refresh keyed on the pointer alone: uncounted, and not held once back."""

    async def refresh_on_pointer_change(self: ChallengerHolder) -> None:
        folder = self._settings.model_path
        pointer = read_pointer(folder, CHALLENGER)
        if pointer == self._pointer:
            return
        try:
            model = await asyncio.to_thread(
                load_bundle, folder / pointer.bundle, self._settings.ort_threads
            )
        except BundleError as error:
            self._fail(f"challenger {pointer.model_version} not loaded: {error}")
            self._set(pointer, None)
            return
        self._set(pointer, model)

    monkeypatch.setattr(ChallengerHolder, "refresh", refresh_on_pointer_change)
    seen = asyncio.run(hide_refresh_restore(rollout_folder, reload_grace_s=0.0))
    assert seen == [(None, 0), (None, 0), (None, 0)]


def test_an_unfit_challenger_is_counted_at_once_and_retried_once_rewritten(
    rollout_folder: Path,
) -> None:
    """A garbled manifest is no view lagging: counted within the grace, once; rewritten, held."""
    pointer = read_pointer(rollout_folder, CHALLENGER)
    assert pointer is not None
    manifest = rollout_folder / pointer.bundle / "manifest.json"
    good = manifest.read_bytes()
    manifest.write_bytes(b"{not json")
    metrics = Metrics()
    settings = Settings(model_dir=str(rollout_folder), reload_poll_s=0.0, reload_grace_s=90.0)
    holder = ChallengerHolder(settings, RolloutMetrics(metrics))
    before = asyncio.run(refreshes(holder, metrics, 2))
    manifest.write_bytes(good)
    after = asyncio.run(refreshes(holder, metrics, 1))
    assert before + after == [(None, 1), (None, 1), ("2", 1)]
    assert holder.last_error is None


@pytest.mark.parametrize(("grace_s", "failures"), [(90.0, 0), (0.0, 1)])
def test_a_pointer_expecting_another_model_is_pending_then_counted(
    rollout_folder: Path, grace_s: float, failures: int
) -> None:
    """The pointer's sha256 not the bundle's: pending within the grace, counted past it."""
    path = rollout_folder / CHALLENGER
    pointer = msgspec.structs.replace(read_pointer(rollout_folder, CHALLENGER), sha256="0" * 64)
    path.write_bytes(encode_pointer(pointer))
    metrics = Metrics()
    settings = Settings(model_dir=str(rollout_folder), reload_poll_s=0.0, reload_grace_s=grace_s)
    holder = ChallengerHolder(settings, RolloutMetrics(metrics))
    assert asyncio.run(refreshes(holder, metrics, 2)) == [(None, failures)] * 2
    assert holder.last_error is not None
    assert "0" * 64 in holder.last_error
