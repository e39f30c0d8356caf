"""One `car-train drift` run in this process, timed per stage; run by `studies.drift_scale.run`.

The job runs unchanged through its CLI (`training.cli.main`); the functions it calls for each
stage are wrapped, where the job looks them up, by a timer that records the stage's wall time
and the process's peak RSS so far. Progress goes to a JSON-lines file as each stage starts and
ends, so that the parent can name the stage a run was stopped in. The last line is the total.

Run: `python -m studies.drift_scale.probe PROGRESS_FILE -- <car-train arguments>`.
"""

import functools
import json
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from training import cli
from training.io import analysis_window, nannyml_drift
from training.jobs import drift

#: (stage, module, function): the drift job's stages, where the job looks each one up.
STAGES: tuple[tuple[str, Any, str], ...] = (
    ("read_window", analysis_window, "read_log"),
    ("read_labels", analysis_window, "read_labels"),
    ("join_labels", drift, "join_labels"),
    ("nannyml", nannyml_drift, "analyse"),
    ("write_plots", nannyml_drift, "write_plots"),
)


def peak_rss_mb() -> float:
    """This process's peak resident set so far, MB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _timed(stage: str, function: Callable[..., Any], progress: Path) -> Callable[..., Any]:
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _note(progress, {"stage": stage, "event": "start"})
        started = time.perf_counter()
        result = function(*args, **kwargs)
        seconds = time.perf_counter() - started
        _note(progress, {"stage": stage, "seconds": seconds, "peak_rss_mb": peak_rss_mb()})
        return result

    return wrapper


def _note(progress: Path, entry: dict[str, Any]) -> None:
    with progress.open("a") as handle:
        handle.write(json.dumps(entry) + "\n")


def main(argv: list[str] | None = None) -> int:
    """Run `car-train <arguments>` with the stages timed; the exit code is the job's."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 2 or args[1] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    progress = Path(args[0])
    for stage, module, name in STAGES:
        setattr(module, name, _timed(stage, getattr(module, name), progress))
    started = time.perf_counter()
    code = cli.main(args[2:])
    total = time.perf_counter() - started
    _note(progress, {"stage": "total", "seconds": total, "peak_rss_mb": peak_rss_mb()})
    return code


if __name__ == "__main__":
    raise SystemExit(main())
