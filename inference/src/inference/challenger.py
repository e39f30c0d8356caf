"""The challenger: the bundle the serving folder's `challenger` pointer names, held.

It sits beside the champion (one more ORT session) for shadow scoring and the canary share.

It is watched like the champion (`Settings.reload_poll_s`), loaded in a thread, and replaced in
one assignment; a pointer removed drops it. A challenger that fails to load is not held: the
champion is never affected by it.

Failures follow the champion's rules (`inference.reload.ModelHolder`). A bundle its pointer names
that is not whole yet as seen from here (files missing or not readable, or a model other than
the pointer's sha256: a network filesystem not caught up) is pending for
`Settings.reload_grace_s` from the first time it was seen so: logged, not counted, retried on
every refresh. Any other failure, or
one still pending after the grace, is counted (`carprice_challenger_loads_total{outcome}`) and
remembered with the pointer and the bundle's file stats: it is retried once either changes (a
restored or re-staged bundle), not on every poll, so a bundle that stays broken is one counted
failure and one error line, not one per poll.

The serving folder's canary share file is re-read with the pointer: when it is for the held
challenger's version, its share (stepped up by `car-train watch`) is the canary share, else
`Settings.canary_share` is.
"""

import asyncio
import logging
from pathlib import Path

from inference.background import cancel
from inference.model import BundleError, BundleSignature, LoadedModel, load_bundle, signature_of
from inference.reload import Grace
from inference.rollout_metrics import RolloutMetrics
from inference.settings import Settings
from shared_schema.serving_folder import (
    CHALLENGER,
    Pointer,
    PointerError,
    Resolved,
    read_canary_share,
    read_pointer,
)

logger = logging.getLogger(__name__)

#: What a load was tried on: the pointer, and its bundle's file stats (None: files missing).
_Tried = tuple[Pointer, BundleSignature | None]


class ChallengerHolder:
    """Holds the challenger model, or None when no (servable) challenger is staged."""

    def __init__(self, settings: Settings, rollout: RolloutMetrics) -> None:
        self._settings = settings
        self._rollout = rollout
        self._pointer: Pointer | None = None
        #: The last counted failure's pointer and files: not retried until they change.
        self._failed: _Tried | None = None
        #: The grace of the pointer whose bundle is pending.
        self._pending = Grace(settings.reload_grace_s)
        self._unreadable = False
        self._poller: asyncio.Task[None] | None = None
        self.current: LoadedModel | None = None
        self.last_error: str | None = None
        #: The canary share file's share when it is for the held challenger, else None.
        self.canary_share: float | None = None

    async def refresh(self) -> None:
        """Load the challenger the pointer names now, if not held; drop it if removed."""
        folder = self._settings.model_path
        try:
            pointer = read_pointer(folder, CHALLENGER)
            canary = read_canary_share(folder)
        except (OSError, PointerError) as error:
            # Counted once per episode, as the champion's unreadable model dir is.
            if not self._unreadable:
                self._rollout.challenger_loads.labels("failure").inc()
                self._fail(f"challenger files unreadable, keeping what is held: {error}")
            self._unreadable = True
            return
        self._unreadable = False
        held = None if pointer is None else pointer.model_version
        is_for_held = canary is not None and canary.challenger_version == held
        self.canary_share = canary.share if canary is not None and is_for_held else None
        if pointer is None:
            self._failed = None
            self._pending.clear()
            if self._pointer is not None:
                self._set(None, None)
            return
        if self.current is not None and pointer == self._pointer:
            return
        tried = (pointer, _bundle_signature(folder / pointer.bundle))
        if tried == self._failed:
            return
        await self._load(folder, tried)

    async def _load(self, folder: Path, tried: _Tried) -> None:
        pointer, signature = tried
        try:
            model = await asyncio.to_thread(
                load_bundle, folder / pointer.bundle, self._settings.ort_threads
            )
        except BundleError as error:
            # A missing file of a named bundle is a view not caught up yet (as for `current`).
            self._failure(tried, pending=signature is None, reason=str(error))
            return
        if model.manifest.sha256 != pointer.sha256:
            reason = f"pointer expects model sha256 {pointer.sha256}, got {model.manifest.sha256}"
            self._failure(tried, pending=True, reason=reason)
            return
        self._failed = None
        self._pending.clear()
        self._rollout.challenger_loads.labels("success").inc()
        self._set(pointer, model)

    def _failure(self, tried: _Tried, *, pending: bool, reason: str) -> None:
        pointer = tried[0]
        version = pointer.model_version
        if pending and self._pending.within(pointer):
            self.last_error = f"challenger {version} pending, keeping what is held: {reason}"
            logger.warning("%s", self.last_error)
            return
        late = " (still pending after the grace)" if pending else ""
        self._failed = tried
        self._pending.clear()
        self._rollout.challenger_loads.labels("failure").inc()
        self._fail(f"challenger {version} not loaded{late}: {reason}")
        self._set(pointer, None)

    def _set(self, pointer: Pointer | None, model: LoadedModel | None) -> None:
        previous, self.current, self._pointer = self.current, model, pointer
        if previous is not None:
            self._rollout.challenger_info.labels(previous.version).set(0)
        if model is not None:
            self.last_error = None
            self._rollout.challenger_info.labels(model.version).set(1)
            logger.info("holding challenger version %s beside the champion", model.version)
        elif previous is not None:
            logger.info("challenger %s withdrawn", previous.version)

    def _fail(self, message: str) -> None:
        self.last_error = message
        logger.error("%s", message)

    def start_polling(self) -> None:
        """Watch the challenger pointer, if polling is configured."""
        if self._settings.reload_poll_s > 0:
            self._poller = asyncio.get_running_loop().create_task(
                self._poll(), name="challenger-poller"
            )

    async def stop_polling(self) -> None:
        """Stop watching the challenger pointer."""
        await cancel(self._poller)
        self._poller = None

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._settings.reload_poll_s)
            try:
                await self.refresh()
            except Exception:
                # Like the champion's poller: an unexpected error must not end the watching.
                logger.exception("unexpected error refreshing the challenger")


def _bundle_signature(directory: Path) -> BundleSignature | None:
    """The bundle dir's file stats; None when a file is missing or cannot be looked at."""
    try:
        return signature_of(directory, Resolved(directory, None))
    except OSError:
        return None
