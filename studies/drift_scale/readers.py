"""Reading a window alone, three ways, each in a fresh interpreter: wall time and peak RSS.

* `drift_reader`: `training.io.analysis_window.read_log`, what `car-train drift` reads with;
* `records_held`: `shared_schema.prediction_log.read_prediction_log` keeping every decoded
  record (the records alone, before any frame is made from them);
* `pyarrow_json`: `pyarrow.json.read_json` per segment, the car struct flattened, to pandas:
  the simplest outside engine. It validates nothing against `Car`, counts no skipped line and
  refuses a whole segment for one broken line, so it is a floor for speed, not a replacement.

Run: `uv run --frozen python -m studies.drift_scale.readers LOG_DIR [--readers NAME ...]`;
prints the reading path's module versions (`run.reading_path_blobs`; `PYTHONPATH` can put
another version first, to compare two), then one JSON object per reader.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from studies.drift_scale.run import reading_path_blobs

# Each prints {"rows", "seconds", "peak_rss_mb"}: ru_maxrss of its own fresh process.
# Every reader's imports come first, for all alike: RSS counts them, the time does not.
_PROLOGUE = """
import json, resource, sys, time
from pathlib import Path

from studies.drift_scale.run import reading_path_blobs
import pyarrow as pa, pyarrow.json as pj
from shared_schema.prediction_log import read_prediction_log, segment_paths
from training.io.analysis_window import read_log
log_dir = Path(sys.argv[1])
started = time.perf_counter()
"""
_EPILOGUE = """
print(json.dumps({"rows": rows, "seconds": time.perf_counter() - started,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""
READERS = {
    "drift_reader": """
frame, read = read_log(log_dir, None, None, include_open=True)
rows = len(frame)
""",
    "records_held": """
rows = len(read_prediction_log(log_dir).records)
""",
    "pyarrow_json": """
tables = [pj.read_json(path).flatten() for path in segment_paths(log_dir)]
frame = pa.concat_tables(tables).to_pandas()
rows = len(frame)
""",
}


def measure(reader: str, log_dir: Path) -> dict[str, float | str]:
    """One reader on `log_dir` in a fresh interpreter (imports counted in RSS, not in time)."""
    code = _PROLOGUE + READERS[reader] + _EPILOGUE
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", code, str(log_dir)], capture_output=True, text=True, check=True
    )
    result: dict[str, float | str] = {"reader": reader, **json.loads(out.stdout)}
    result["process_wall_s"] = time.perf_counter() - started
    return result


def main(argv: list[str] | None = None) -> int:
    """Measure each reader on the log directory; one JSON line each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log_dir", type=Path)
    parser.add_argument("--readers", nargs="+", choices=list(READERS), default=list(READERS))
    args = parser.parse_args(argv)
    print(json.dumps({"reading_path": reading_path_blobs()}), flush=True)
    for reader in args.readers:
        print(json.dumps(measure(reader, args.log_dir)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
