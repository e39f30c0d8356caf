"""Scale of the drift job: `car-train drift` on prediction-log windows of growing size.

For each size (100k, 1M and 5M records by default) it writes a window of real listings with
seeded variation in the server's log format, with labels (`studies.drift_scale.window`; kept
under `--work`, reused when the same size and seed are there), then runs `car-train drift
--log <window> --labels <labels>` in a fresh interpreter (`studies.drift_scale.probe`) and
records its wall time, its peak RSS (the kernel's `ru_maxrss` of that process) and the same
per stage: reading the window, reading and joining the labels, NannyML, writing the plots; the
rest (scoring the reference, the verdict, the summary) is the total less the stages.

A run whose resident set passes `--max-rss-gb` is stopped (the machine is shared; a job that
big is past what one machine should give it) and recorded with the stage it was in; so is one
that runs longer than `--max-wall-s`, when given (the stages it finished are kept).

Writes `studies/drift_scale/results/drift-scale-<date>-<host>-<label>.{json,md}`, the machine
stated; `--compare` an earlier results JSON to put its figures beside these (before/after).
Run: `uv run --frozen python -m studies.drift_scale.run [--records N ...] [--label NAME]
[--compare FILE]`. Run it under `nice` on a shared machine: wall times are then inflated,
peak RSS is not.
"""

import argparse
import hashlib
import importlib.util
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pandas as pd
import psutil

from shared_schema import FIELD_NAMES
from shared_schema.bundle import read_verified
from shared_schema.serving_folder import resolve
from studies.drift_scale.report import markdown
from studies.drift_scale.window import write_window
from training.config import load_params
from training.io import onnx_scoring
from training.jobs.drift import SUMMARY_FILE

RESULTS = Path(__file__).parent / "results"
DEFAULT_RECORDS = (100_000, 1_000_000, 5_000_000)
#: The replayed traffic's first record (any fixed time: the windows are not compared by date).
START = datetime(2026, 11, 2, tzinfo=UTC)
_POLL_S = 0.2


def machine() -> dict[str, Any]:
    """The machine the figures were taken on."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "host": socket.gethostname(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "available_gb_at_start": round(psutil.virtual_memory().available / 2**30, 1),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "nice": os.nice(0),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


#: The modules of the reading path; the results name the version of each that was measured.
READING_PATH = ("training.io.analysis_window", "shared_schema.prediction_log")


def reading_path_blobs() -> dict[str, str]:
    """Each reading-path module's git blob id as this environment imports it (`git hash-object`).

    Names the code measured even when it is not the checkout's (a `PYTHONPATH` copy).
    """
    blobs = {}
    for module in READING_PATH:
        spec = importlib.util.find_spec(module)
        origin = spec.origin if spec else None
        if origin is None:
            raise RuntimeError(f"{module}: not importable here")
        data = Path(origin).read_bytes()
        # git's blob id is SHA-1 by definition: an identifier here, not a security measure.
        blob = hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False)
        blobs[module] = blob.hexdigest()[:12]
    return blobs


def _segment_bytes() -> int:
    """The server's default segment size (the one home: `inference.settings.Settings`)."""
    from inference.settings import Settings

    field = next(f for f in msgspec.structs.fields(Settings) if f.name.endswith("segment_bytes"))
    return int(field.default)


def ensure_window(params_file: Path, work: Path, records: int, seed: int) -> dict[str, Any]:
    """The window of `records` under `work` (written now unless the same one is there)."""
    out = work / f"window-{records}-seed{seed}"
    meta_file = out / "window.json"
    if meta_file.is_file():
        return dict(json.loads(meta_file.read_text()), generated_now=False)
    params = load_params(params_file)
    served = read_verified(resolve(params.paths.serving_bundle).directory)
    listings = pd.read_parquet(params.paths.listings, columns=[*FIELD_NAMES, "price"])

    def score(frame: pd.DataFrame) -> Any:
        feeds = onnx_scoring.frame_feeds(frame, served.manifest.inputs)
        return onnx_scoring.run_graph(served.model_bytes, feeds)

    # Written under another name and renamed when whole: a stopped generation is not reused.
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    started = time.perf_counter()
    files = write_window(
        listings,
        partial,
        records,
        seed=seed,
        score=score,
        start=START,
        segment_bytes=_segment_bytes(),
        model_version=served.manifest.model_version,
    )
    partial.rename(out)
    meta = {
        "records": files.records,
        "segments": files.segments,
        "log_bytes": files.log_bytes,
        "labels_bytes": (out / files.labels.name).stat().st_size,
        "log_dir": str(out / files.log_dir.name),
        "labels": str(out / files.labels.name),
        "seed": seed,
        "source_listings": len(listings),
        "generation_s": round(time.perf_counter() - started, 1),
    }
    meta_file.write_text(json.dumps(meta, indent=2))
    return dict(meta, generated_now=True)


def measure(
    params_file: Path, window: dict[str, Any], run: str, cap_gb: float, max_wall_s: float | None
) -> dict[str, Any]:
    """`car-train drift` on the window in a fresh interpreter: wall, peak RSS, per stage.

    Stopped when its resident set passes `cap_gb` or its wall time `max_wall_s`.
    """
    progress = Path(window["log_dir"]).parent / f"progress-{run}.jsonl"
    progress.unlink(missing_ok=True)
    command = [
        sys.executable,
        "-m",
        "studies.drift_scale.probe",
        str(progress),
        "--",
        "--params",
        str(params_file),
        "drift",
        "--log",
        window["log_dir"],
        "--labels",
        window["labels"],
        "--run",
        run,
    ]
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    process = psutil.Process(child.pid)
    sampled_peak, stopped, timed_out = 0, False, False
    while child.poll() is None:
        try:
            rss = process.memory_info().rss
        except psutil.NoSuchProcess:
            break
        sampled_peak = max(sampled_peak, rss)
        timed_out = max_wall_s is not None and time.perf_counter() - started > max_wall_s
        if rss > cap_gb * 2**30 or timed_out:
            child.kill()
            stopped = True
            break
        time.sleep(_POLL_S)
    _, stderr = child.communicate()
    wall = time.perf_counter() - started
    notes = (
        [json.loads(line) for line in progress.read_text().splitlines()]
        if progress.exists()
        else []
    )
    finished = {n["stage"]: n for n in notes if "seconds" in n}
    started_stages = [n["stage"] for n in notes if n.get("event") == "start"]
    result: dict[str, Any] = {
        "run": run,
        "exit_code": child.returncode,
        "wall_s": round(wall, 1),
        "stopped_over_cap_gb": cap_gb if stopped and not timed_out else None,
        "stopped_after_s": max_wall_s if timed_out else None,
        "stopped_in_stage": next((s for s in reversed(started_stages) if s not in finished), None)
        if stopped
        else None,
        "peak_rss_mb": round(finished["total"]["peak_rss_mb"]) if "total" in finished else None,
        "sampled_peak_rss_mb": round(sampled_peak / 2**20),
        "stages": {
            stage: {"seconds": round(n["seconds"], 2), "peak_rss_mb_after": round(n["peak_rss_mb"])}
            for stage, n in finished.items()
            if stage != "total"
        },
    }
    if "total" in finished:
        inside = sum(s["seconds"] for s in result["stages"].values())
        result["stages"]["rest"] = {"seconds": round(finished["total"]["seconds"] - inside, 2)}
        result["stages"]["start_up"] = {"seconds": round(wall - finished["total"]["seconds"], 2)}
    if child.returncode != 0 and not stopped:
        result["error"] = stderr.decode(errors="replace")[-2000:]
    return result


def window_chunks(params_file: Path, run: str) -> dict[str, int]:
    """The chunks NannyML cut the window into, from the run's summary (none if it did not end)."""
    summary = load_params(params_file).paths.drift / run / SUMMARY_FILE
    if not summary.exists():
        return {}
    read = json.loads(summary.read_text())
    return {"window_chunk_size": read["window_chunk_size"], "window_chunks": len(read["chunks"])}


def main(argv: list[str] | None = None) -> int:
    """Measure every size, write the results; 1 if a run failed (not if stopped over the cap)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, nargs="+", default=list(DEFAULT_RECORDS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--work", type=Path, default=Path("data/drift_scale"), help="windows")
    parser.add_argument("--label", default=None, help="names the results (default: the commit)")
    parser.add_argument("--max-rss-gb", type=float, default=10.0)
    parser.add_argument("--max-wall-s", type=float, help="stop a run after this long")
    parser.add_argument("--compare", type=Path, help="an earlier results JSON, shown beside")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    dirty = bool(
        subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    )
    label = args.label or commit
    report: dict[str, Any] = {
        "study": "drift_scale",
        "date": f"{datetime.now(tz=UTC):%Y-%m-%d %H:%M} UTC",
        "label": label,
        "commit": commit,
        "uncommitted_changes": dirty,
        "reading_path": reading_path_blobs(),
        "machine": machine(),
        "max_rss_gb": args.max_rss_gb,
        "max_wall_s": args.max_wall_s,
        "sizes": [],
    }
    before = json.loads(args.compare.read_text()) if args.compare else None
    args.results.mkdir(parents=True, exist_ok=True)
    stem = f"drift-scale-{datetime.now(tz=UTC):%Y-%m-%d}-{socket.gethostname()}-{label}"
    for records in args.records:
        window = ensure_window(args.params, args.work, records, args.seed)
        print(f"window {records}: {window['log_bytes'] / 1e6:.0f} MB", file=sys.stderr)
        run = f"scale-{label}-{records}-{datetime.now(tz=UTC):%H%M%S}"
        measured = measure(args.params, window, run, args.max_rss_gb, args.max_wall_s)
        measured |= window_chunks(args.params, run)
        print(f"  {json.dumps(measured)}", file=sys.stderr)
        report["sizes"].append({"window": window, **measured})
        # Written after every size: a long session stopped later keeps what it measured.
        (args.results / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
        (args.results / f"{stem}.md").write_text(markdown(report, before))
    print(args.results / f"{stem}.md")
    failed = [
        s
        for s in report["sizes"]
        if s["exit_code"] != 0 and not (s["stopped_over_cap_gb"] or s["stopped_after_s"])
    ]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
