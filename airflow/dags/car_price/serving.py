"""Is the running server serving the version we published? Polls its `/ready`."""

import json
import logging
import time
import urllib.error
import urllib.request

log = logging.getLogger(__name__)


class ServingCheckError(RuntimeError):
    """The server never answered with the expected model version in time."""


def wait_for_version(url: str, version: str, *, timeout_s: float, poll_s: float = 1.0) -> None:
    """Poll `url/ready` until it answers 200 with `model_version` == `version`.

    Args:
        url: The server's base URL.
        version: The model version that must be served.
        timeout_s: How long to wait in all.
        poll_s: Seconds between polls.

    Raises:
        ServingCheckError: Not within `timeout_s`; the message names the URL and what it last
            answered (a version, a status, or why it could not be reached).
    """
    ready = url.rstrip("/") + "/ready"
    deadline = time.monotonic() + timeout_s
    last = "no answer yet"
    while True:
        served, last = _served_version(ready)
        if served == version:
            log.info("%s serves model version %s", ready, version)
            return
        if time.monotonic() >= deadline:
            raise ServingCheckError(
                f"{ready} did not serve model version {version} within {timeout_s:g} s; "
                f"last: {last}"
            )
        time.sleep(poll_s)


def _served_version(ready: str) -> tuple[str | None, str]:
    """The version `/ready` answers (None when not ready or unreachable) and a description."""
    try:
        with urllib.request.urlopen(ready, timeout=5) as response:  # noqa: S310 (http(s) URL from settings)
            body = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return None, f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return None, f"unreachable ({getattr(exc, 'reason', exc)})"
    except ValueError as exc:
        return None, f"not JSON ({exc})"
    version = body.get("model_version") if isinstance(body, dict) else None
    return (None if version is None else str(version)), f"model_version {version}"
