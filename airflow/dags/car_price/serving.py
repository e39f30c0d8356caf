"""Is every running server serving the version we published?

With a Prometheus that scrapes the servers (`wait_for_version_everywhere`), every target of the
scrape job must report the version in `carprice_model_info`, and as many targets must report
it as are up: one pod left on the old bundle (a stale mount, a failed reload) fails the check.
Without one (`wait_for_version`), the one URL's `/ready` is polled: behind a Service that is
whichever pod answered, so it is the fallback for a single server (local runs, compose).
"""

import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any, Final

log = logging.getLogger(__name__)

#: The server's model gauge (inference.metrics.MODEL_INFO; the DAGs do not import the server):
#: 1 per served version while any worker serves it, labelled `model_version`.
MODEL_INFO: Final = "carprice_model_info"


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

    def served() -> tuple[bool, str]:
        answered, last = _served_version(ready)
        return answered == version, last

    _poll(
        served,
        timeout_s=timeout_s,
        poll_s=poll_s,
        failure=f"{ready} did not serve model version {version} within {timeout_s:g} s",
    )
    log.info("%s serves model version %s", ready, version)


def _poll(
    check: Callable[[], tuple[bool, str]], *, timeout_s: float, poll_s: float, failure: str
) -> None:
    """Call `check` every `poll_s` until it says done; past `timeout_s` raise `failure`.

    Raises:
        ServingCheckError: `failure`, then what `check` last described.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        done, last = check()
        if done:
            return
        if time.monotonic() >= deadline:
            raise ServingCheckError(f"{failure}; last: {last}")
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


def wait_for_version_everywhere(
    prometheus_url: str, job: str, version: str, *, timeout_s: float, poll_s: float = 5.0
) -> None:
    """Wait until every target of `job` that is up serves `version`, and only it.

    Asks Prometheus `count by (model_version) (carprice_model_info{job=...} == 1)` and
    `count(up{job=...} == 1)`: done when the only version served is `version`, by as many
    targets as are up (at least one). A pod mid-reload reports both versions and is waited for.

    Args:
        prometheus_url: Prometheus' base URL (its HTTP API under /api/v1).
        job: The scrape job of the servers (its `job` label).
        version: The model version that must be served.
        timeout_s: How long to wait in all; allow a scrape interval beyond the reload.
        poll_s: Seconds between queries.

    Raises:
        ServingCheckError: Not within `timeout_s`; the message names the job, the targets up
            and the versions they last served (or why Prometheus could not answer).
    """
    selector = f'{{job="{job}"}}'
    served_query = f"count by (model_version) ({MODEL_INFO}{selector} == 1)"
    up_query = f"count(up{selector} == 1)"

    def everywhere() -> tuple[bool, str]:
        try:
            served = {
                str(sample["metric"].get("model_version")): int(float(sample["value"][1]))
                for sample in _query(prometheus_url, served_query)
            }
            up = sum(int(float(sample["value"][1])) for sample in _query(prometheus_url, up_query))
        except PrometheusError as exc:
            return False, str(exc)
        last = f"{up} targets up, serving {dict(sorted(served.items())) or 'nothing'}"
        return up > 0 and served == {version: up}, last

    _poll(
        everywhere,
        timeout_s=timeout_s,
        poll_s=poll_s,
        failure=(
            f"job {job} did not serve model version {version} on every target within "
            f"{timeout_s:g} s ({prometheus_url})"
        ),
    )
    log.info("every target of job %s serves model version %s", job, version)


class PrometheusError(RuntimeError):
    """Prometheus could not be asked, or answered with an error."""


def _query(prometheus_url: str, promql: str) -> list[dict[str, Any]]:
    """An instant query's vector."""
    url = prometheus_url.rstrip("/") + "/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (URL from settings)
            body = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise PrometheusError(f"Prometheus answered HTTP {exc.code} to {promql}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise PrometheusError(f"Prometheus unreachable ({reason})") from exc
    except ValueError as exc:
        raise PrometheusError(f"Prometheus answered no JSON ({exc})") from exc
    if body.get("status") != "success" or body["data"]["resultType"] != "vector":
        raise PrometheusError(f"Prometheus refused {promql}: {body.get('error', body)}")
    result: list[dict[str, Any]] = body["data"]["result"]
    return result
