"""The current model and its hot reload: load in the background, validate, swap atomically."""

import asyncio
import logging
import time

from inference.background import cancel
from inference.metrics import Metrics
from inference.model import (
    BundleError,
    BundleSignature,
    LoadedModel,
    PendingBundleError,
    load_bundle,
    read_signature,
)
from inference.settings import Settings
from shared_schema.serving_folder import PointerError

logger = logging.getLogger(__name__)


class ModelNotReadyError(Exception):
    """No model has been loaded yet."""


class Grace:
    """How long a bundle may stay pending: from the first time its key was seen so, per key."""

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._since: tuple[object, float] | None = None

    def within(self, key: object) -> bool:
        """Whether `key` is within its grace (which starts now if the key is new)."""
        now = time.monotonic()
        if self._since is None or self._since[0] != key:
            self._since = (key, now)
        return now - self._since[1] < self._seconds

    def clear(self) -> None:
        """Forget the pending key: the next one starts a fresh grace."""
        self._since = None


class ModelHolder:
    """Holds the current model; a reload replaces the reference in one assignment.

    Runs already started keep the `LoadedModel` they read, so they finish on the old session;
    the next run reads the new one. A bundle that fails validation never becomes current.

    A bundle that is not whole yet as seen from here (`PendingBundleError`) is pending, not
    failed, for `Settings.reload_grace_s` from the first time this holder saw it so: logged,
    not counted. Past the grace it is a counted failure like any other.
    """

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self._settings = settings
        self._metrics = metrics
        self._lock = asyncio.Lock()
        self._rejected: BundleSignature | None = None
        # The bundle pending since when (monotonic s): its dir and pointer, not its file stats,
        # which change as a network filesystem catches up.
        self._pending = Grace(settings.reload_grace_s)
        self._poller: asyncio.Task[None] | None = None
        self.current: LoadedModel | None = None
        self.last_error: str | None = None

    def model(self) -> LoadedModel:
        """The model to serve with now.

        Raises:
            ModelNotReadyError: No bundle has loaded yet.
        """
        model = self.current
        if model is None:
            raise ModelNotReadyError
        return model

    async def reload(self) -> LoadedModel:
        """Load the bundle in the model dir in a thread, then make it current.

        Returns:
            The newly current model.

        Raises:
            BundleError: The bundle is unfit; the previous model stays current.
        """
        async with self._lock:
            # The files as they were before the load: a failure is remembered against these, so
            # a publish landing while the load fails is still retried (it differs from them).
            seen = self._signature()
            try:
                model = await asyncio.to_thread(
                    load_bundle, self._settings.model_path, self._settings.ort_threads
                )
            except PendingBundleError as error:
                if self._still_pending():
                    message = f"model bundle pending, keeping the current model: {error}"
                    self.last_error = message
                    logger.warning("%s", message)
                    raise
                self._reject(seen, f"model bundle still pending after the grace, rejected: {error}")
                raise
            except BundleError as error:
                self._reject(seen, f"model bundle rejected, keeping the current model: {error}")
                raise
            self._swap(model)
            return model

    async def load_at_start(self) -> None:
        """Load the bundle at start-up, if anything is published; else wait for the poller.

        A serving folder with nothing in it yet (a pod started before the first publish) is
        the expected state of a new deployment, not a failed load: it is logged and shown by
        `/ready`, but not counted, so the reload-failure alert does not fire on every new pod.

        Raises:
            BundleError: Something is published and it is unfit (counted, as any reload).
        """
        if self._signature() is None:
            self.last_error = f"no model published in {self._settings.model_path} yet"
            logger.warning("%s; unready until one appears", self.last_error)
            return
        await self.reload()

    def _still_pending(self) -> bool:
        """Whether the bundle now named is within its grace (starting it if new)."""
        try:
            signature = read_signature(self._settings.model_path)
        except (OSError, PointerError):
            return False
        key = (signature.directory, signature.pointer) if signature is not None else ("", None)
        return self._pending.within(key)

    def _signature(self) -> BundleSignature | None:
        """The model dir's signature now; None when it cannot be read."""
        try:
            return read_signature(self._settings.model_path)
        except (OSError, PointerError):
            return None

    def _reject(self, seen: BundleSignature | None, message: str) -> None:
        """Remember the files that failed (not retried until they change), count, log."""
        self._rejected = seen
        self._fail(message)

    def _fail(self, message: str) -> None:
        """Record a bundle that could not be loaded: logged, counted, kept for /ready."""
        self.last_error = message
        self._metrics.model_loads.labels("failure").inc()
        logger.error("%s", message)

    def _swap(self, model: LoadedModel) -> None:
        previous, self.current = self.current, model
        self._rejected = None
        self._pending.clear()
        self.last_error = None
        metrics = self._metrics
        if previous is not None:
            metrics.model_info.labels(*_info_labels(previous)).set(0)
        metrics.model_info.labels(*_info_labels(model)).set(1)
        written = None if model.signature is None else model.signature.manifest
        metrics.model_served(
            model.manifest.created_at, None if written is None else written[0] / 1e9
        )
        metrics.model_ready.set(1)
        metrics.model_loads.labels("success").inc()
        logger.info(
            "serving model %s version %s (sha256 %s)",
            model.manifest.model_name,
            model.version,
            model.manifest.sha256,
        )

    def start_polling(self) -> None:
        """Watch the model dir for a changed bundle, if polling is configured."""
        if self._settings.reload_poll_s > 0:
            self._poller = asyncio.get_running_loop().create_task(
                self._poll(), name="model-dir-poller"
            )

    async def stop_polling(self) -> None:
        """Stop watching the model dir."""
        await cancel(self._poller)
        self._poller = None

    async def _poll(self) -> None:
        # A change is acted on once the files stayed the same for a whole interval, so a
        # bundle still being copied in is not loaded half-written and counted as a failure.
        seen: BundleSignature | None = None
        unreadable = False
        while True:
            await asyncio.sleep(self._settings.reload_poll_s)
            try:
                signature = read_signature(self._settings.model_path)
            except (OSError, PointerError) as error:
                # Counted once per episode (the reload alert fires), not once per poll.
                if not unreadable:
                    self._fail(f"model dir unreadable, keeping the current model: {error}")
                unreadable = True
                continue
            unreadable = False
            current = self.current
            changed = signature is not None and signature != self._rejected
            if not changed or (current is not None and signature == current.signature):
                seen = None
                continue
            if signature != seen:
                seen = signature
                continue
            seen = None
            try:
                await self.reload()
            except BundleError:
                pass  # logged and counted by reload; the current model keeps serving
            except Exception:
                # Anything else (a permission error mid-deploy, say) must not end the poller:
                # reload would then be off for the rest of the process without a sign.
                logger.exception("unexpected error reloading %s", self._settings.model_path)


def _info_labels(model: LoadedModel) -> tuple[str, str, str, str]:
    manifest = model.manifest
    return (manifest.model_name, manifest.model_version, manifest.schema_version, manifest.sha256)
