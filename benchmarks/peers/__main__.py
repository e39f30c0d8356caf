"""`python -m benchmarks.peers`: ours against MLServer and BentoML, nothing else.

The same comparison `benchmarks.run` makes when peers are on, for working on the peers alone:
writes the figures as JSON (`--out`) and its report section beside it (`.md`). Run from the
repository root after `make train`.
"""

import argparse
import json
import logging
import os
import socket
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.champion import held_out_rows, resolve
from benchmarks.peers.compare import RATES, compare
from benchmarks.peers.report import section
from benchmarks.servers import LOADGEN_CORE


def main(argv: list[str] | None = None) -> int:
    """Compare ours with the peers and write the figures."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.peers", description=__doc__)
    parser.add_argument("--bundle", type=Path, help="bundle directory (default: the served one)")
    parser.add_argument("--pipeline", type=Path, help="its training pipeline (LightGBM booster)")
    parser.add_argument("--rows", type=Path, help="parquet of held-out cars (default: test split)")
    parser.add_argument("--step-seconds", type=float, default=15.0)
    parser.add_argument("--ladder", type=float, nargs="+", default=list(RATES))
    parser.add_argument("--only", nargs="+", choices=("mlserver", "bentoml"), help="some peers")
    parser.add_argument("--work-dir", type=Path, default=Path("data/bench/peers"))
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    champion, rows = resolve(args.bundle, args.pipeline, args.rows)
    if champion.pipeline_dir is None:
        parser.error(
            "the peers need the training pipeline (--pipeline): MLServer serves its booster"
        )
    args.work_dir.mkdir(parents=True, exist_ok=True)
    # The generator runs on the load-generator core, as Locust and the open loop do.
    os.sched_setaffinity(0, {LOADGEN_CORE})
    frame = held_out_rows(rows)
    ladder = (args.ladder, args.step_seconds)
    before = os.getloadavg()
    figures = compare(champion, frame, args.work_dir, *ladder, names=args.only)
    args.out.write_text(json.dumps(figures, indent=2, default=str), encoding="utf-8")
    # The same section `make bench`'s report has, with what a reader needs to weigh it.
    head = f"# Peers {datetime.now(UTC):%Y-%m-%d} on {socket.gethostname()}\n\nModel: "
    loads = (", ".join(f"{x:.2f}" for x in load) for load in (before, os.getloadavg()))
    head += f"{champion.label}. Load average before / after: {' / '.join(loads)}.\n\n"
    markdown = head + "\n".join(section({"peers": figures}))
    args.out.with_suffix(".md").write_text(markdown, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
