"""Prometheus's HTTP query API, for the rollout watcher: one instant query, one number."""

import json
import math
import urllib.error
import urllib.parse
import urllib.request

from training.errors import PipelineError


def query_number(url: str, promql: str, timeout_s: float = 10.0) -> float | None:
    """The single value of an instant query; None when it returns no sample (or NaN).

    Raises:
        PipelineError: Prometheus cannot be reached, refuses the query, or returns several
            samples (the message names the query).
    """
    address = f"{url.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    try:
        with urllib.request.urlopen(address, timeout=timeout_s) as response:  # noqa: S310 - http(s) by config
            body = json.load(response)
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise PipelineError(f"prometheus {url}: query {promql!r} failed: {error}") from error
    if body.get("status") != "success":
        raise PipelineError(f"prometheus {url}: query {promql!r}: {body.get('error')}")
    result = body["data"]["result"]
    if body["data"]["resultType"] == "scalar":
        value = float(result[1])
    elif not result:
        return None
    elif len(result) > 1:
        raise PipelineError(f"prometheus {url}: query {promql!r} returned {len(result)} series")
    else:
        value = float(result[0]["value"][1])
    return None if math.isnan(value) else value
