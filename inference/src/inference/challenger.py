"""The challenger: the bundle the serving folder's `challenger` pointer names, held.

It sits beside the champion (one more ORT session) for shadow scoring and the canary share.

It is watched like the champion (`Settings.reload_poll_s`), loaded in a thread, and replaced in
one assignment; a pointer removed drops it. A challenger that fails to load is not held: the
champion is never affected by it.

The serving folder's canary share file is re-read with the pointer: when it is for the held
challenger's version, its share (stepped up by `car-train watch`) is the canary share, else
`Settings.canary_share` is.
"""

import asyncio
import logging

from inference.background import cancel
from inference.model import BundleError, LoadedModel, load_bundle
from inference.rollout_metrics import RolloutMetrics
from inference.settings import Settings
from shared_schema.serving_folder import (
    CHALLENGER,
    Pointer,
    PointerError,
    read_canary_share,
    read_pointer,
)

logger = logging.getLogger(__name__)


class ChallengerHolder:
    """Holds the challenger model, or None when no (servable) challenger is staged."""

    def __init__(self, settings: Settings, rollout: RolloutMetrics) -> None:
        self._settings = settings
        self._rollout = rollout
        self._pointer: Pointer | None = None
        self._poller: asyncio.Task[None] | None = None
        self.current: LoadedModel | None = None
        self.last_error: str | None = None
        #: The canary share file's share when it is for the held challenger, else None.
        self.canary_share: float | None = None

    async def refresh(self) -> None:
        """Load the challenger the pointer names now, if it changed; drop it if removed."""
        folder = self._settings.model_path
        try:
            pointer = read_pointer(folder, CHALLENGER)
            canary = read_canary_share(folder)
        except (OSError, PointerError) as error:
            self._fail(f"challenger files unreadable, keeping what is held: {error}")
            return
        held = None if pointer is None else pointer.model_version
        is_for_held = canary is not None and canary.challenger_version == held
        self.canary_share = canary.share if canary is not None and is_for_held else None
        if pointer == self._pointer:
            return
        if pointer is None:
            self._set(None, None)
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
