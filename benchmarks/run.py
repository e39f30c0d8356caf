"""`make bench`: model level, profile, sizes, the peers' open loop, both generators per server.

Results go to `benchmarks/results/<date>-<host>.{json,md}`, logs and raw outputs to
`data/bench/runs/<time>/`. Servers, the model level and the profile run pinned to core 0; this
process (Locust's load generator) pins itself to core 1, and so does the open-loop generator's.
See `benchmarks/README.md`.
"""

import argparse
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import psutil

from benchmarks.batch_ab import interleaved
from benchmarks.champion import Champion, held_out_rows, request_bodies, resolve
from benchmarks.contract import RESULTS_DIR, CurveStep
from benchmarks.figures import recommended_workers
from benchmarks.goals import load_goals
from benchmarks.load import LOCUST_ARRIVALS, SETUP, StagePlan, run_plan, set_cars
from benchmarks.openloop import ARRIVALS
from benchmarks.openloop_runs import FLOOR_RATE, OpenLoopProcess
from benchmarks.peers.compare import measure_peers
from benchmarks.report import markdown
from benchmarks.servers import (
    LOADGEN_CORE,
    SERVER_CORE,
    RunningServer,
    ServerSpec,
    free_port,
    server_specs,
    start_timed,
)

logger = logging.getLogger("benchmarks")

WORK_DIR: Final = Path("data/bench/runs")
#: In the run's work directory: our servers' one-car bodies, one a line.
BODIES_FILE: Final = "bodies.jsonl"
#: Offered single-car rates (requests/s), climbed until a server stops keeping up.
LADDER: Final = (50, 100, 200, 400, 600, 800, 1000, 1500, 2000, 2500, 3000, 4000)
COLD_STARTS: Final = 3
#: Rounds of the interleaved 1,000-car batches (`benchmarks.batch_ab`), a step's seconds each.
AB_ROUNDS: Final = 5
#: Requests/s of `/predict` and of `/health` each in the open-loop stage (issue goals: 50).
OPEN_LOOP_RATE: Final = 50.0
#: The open-loop generator's single-car ladder, climbed until a server stops keeping up (it
#: starts low for the baseline), then bisected twice below the first step not sustained.
OPEN_LOOP_LADDER: Final = (10, 25, 50, 100, 200, 400, 700, 1000, 1300, 1600, 2000, 2500, 3000, 4000)
#: Shares of one worker's capacity for the capacity curve, up to overload.
CURVE_SHARES: Final = (*(round(n / 10, 1) for n in range(1, 11)), 1.1, 1.25)
#: Share of one worker's capacity at which 1 and 2 workers on one core are compared.
WORKERS_COMPARED_AT: Final = 0.8
#: Cars per `/predict/batch` request of the batch-vs-single scenario.
BATCH_CARS: Final = 1000
# pytest-benchmark: at least 5 timed calls after 3 warm-up calls, about 0.6 s per cell.
_TIMING: Final = "--benchmark-min-rounds=5 --benchmark-max-time=0.6 --benchmark-warmup=on"
_TIMING_ARGS: Final = (*_TIMING.split(), "--benchmark-warmup-iterations=3")


def in_process(champion: Champion, rows: Path, work: Path, quick: bool) -> dict[str, Any]:
    """`model_bench.py` and `profile.py` under pytest-benchmark, pinned to the server core.

    Returns:
        pytest-benchmark's JSON without raw timings; the profiles' summaries under "profile".
    """
    out = work / "in_process.json"
    options = [f"--bundle={champion.bundle_dir}", f"--rows={rows}", f"--benchmark-json={out}"]
    options += [f"--pipeline={champion.pipeline_dir}"] if champion.pipeline_dir else []
    quick_args = ("--sizes=1,10", "--requests=160", "--benchmark-max-time=0", "--distinct-cars=20")
    options += [*quick_args, "--benchmark-min-rounds=1"] if quick else _TIMING_ARGS
    # pytest loads only the plugins named here (the others cost seconds to import); warnings
    # are reported, not errors: a benchmark is not a test. A failed cell is missing from the
    # JSON and reported as not measured.
    plugins = ("-p", "pytest_benchmark.plugin", "-p", "pytest_timeout", "-p", "no:cacheprovider")
    plugins += ("-p", "no:warnings")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    tests = [str(Path(__file__).with_name(name)) for name in ("model_bench.py", "profile.py")]
    command = ["taskset", "-c", str(SERVER_CORE), sys.executable, "-m", "pytest", *tests]
    with (work / "in_process.log").open("wb") as log:
        command += [*plugins, "-rs", *options]
        subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT, check=False)
    result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    result["machine_info"]["cpu"].pop("flags", None)
    for entry in result["benchmarks"]:
        entry["stats"].pop("data", None)
    profiles = [entry for entry in result["benchmarks"] if entry["group"] == "profile"]
    result["benchmarks"] = [entry for entry in result["benchmarks"] if entry not in profiles]
    result["profile"] = {entry["params"]["side"]: entry["extra_info"] for entry in profiles}
    return result


def environment_sizes() -> dict[str, Any]:
    """Installed size of what `inference` needs (its closure in uv.lock) vs the whole venv.

    Both sum the files each installed distribution records; workspace packages are editable.
    """
    from importlib import metadata

    from packaging.requirements import Requirement

    def size_mb(dist: metadata.Distribution) -> float:
        paths = [Path(str(file.locate())) for file in dist.files or []]
        return sum(path.stat().st_size for path in paths if path.is_file()) / 2**20

    command = ["uv", "export", "--frozen", "--package", "inference", "--no-default-groups"]
    lines = subprocess.run([*command, "--no-hashes"], capture_output=True, text=True, check=True)
    names = []
    for line in lines.stdout.splitlines():
        if line.startswith("-e ./"):  # a workspace member
            names.append(line.removeprefix("-e ./"))
        elif line and not line.startswith(("#", " ")):
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate():
                names.append(requirement.name)
    return {
        "inference_only_mb": sum(size_mb(metadata.distribution(name)) for name in names),
        "inference_only_packages": sorted(names),
        "full_mb": sum(size_mb(dist) for dist in metadata.distributions()),
        "how": "files recorded by each installed distribution; inference's closure: uv export",
    }


def measure_servers(
    champion: Champion, args: argparse.Namespace, work: Path, peers: dict[str, Any]
) -> dict[str, Any]:
    """Cold starts, Locust's stage plan, the open loop and memory after load, for each server.

    The baseline comes first: its max sustained rate sets every server's mixed rate (Locust)
    and, with each measured peer's, an open-loop rate ours is compared at. Ours also runs the
    capacity curve, the batch-vs-single scenario and, with two workers on the same core, the
    ladder again.
    """
    sustained, port = load_goals().sustained, free_port()
    servers: dict[str, Any] = {}
    mixed_rate: float | None = None
    for spec in server_specs(champion, port, work / "prediction-log"):
        server, cold_starts = start_timed(spec, port, work / f"{spec.name}.log", args.cold_starts)
        loop = OpenLoopProcess(server, work, args, work / BODIES_FILE)
        try:
            plan = StagePlan(
                args.step_seconds, args.ladder, sustained.holds, server.cpu_seconds, mixed_rate
            )
            measured = run_plan(server.url, plan)
            floor = ["floor", "--rate", str(OPEN_LOOP_RATE)]
            measured["open_loop"] = loop.run(f"{spec.name}-floor", floor, 2 * args.step_seconds)
            if spec.name == "baseline":
                measured["open_loop_ladder"] = loop.ladder(spec.name)["ladder"]
            elif spec.name == "ours":
                measured |= ours_open_loop(loop, {"baseline": servers.get("baseline"), **peers})
            measured["memory_after_load"] = server.memory()
        finally:
            server.stop()
        mixed_rate = measured["mixed"]["offered_rps"]
        if spec.name == "ours":
            measured["workers"] = two_workers(spec, port, work, args, measured)
            measured["workers"]["recommended_per_core"] = recommended_workers(measured["workers"])
        servers[spec.name] = measured | {"title": spec.title, "cold_starts_s": cold_starts}
        open_loop = measured.get("open_loop_ladder", {}).get("max_sustained_rps")
        logger.info(
            "%s: max sustained %.0f req/s (Locust), %s (open loop)",
            *(spec.name, measured["max_sustained_rps"], open_loop),
        )
    return servers


def ours_open_loop(loop: OpenLoopProcess, others: dict[str, Any]) -> dict[str, Any]:
    """Ours: ladder, capacity curve, each other server's rate and the batch-vs-single scenario.

    Capacity is the open-loop max sustained rate of this one worker on one core; the curve's
    steps are shares of it. Another server's rate (the baseline's, a peer's) is the highest
    offered rate it sustained, sent with the same seed: the same schedule. Ours' step there is
    `open_loop_at_<server>_rate`, and so is that server's own ladder step (set on `others`).
    """
    rates = {
        name: rate
        for name, other in others.items()
        if other and (rate := other.get("open_loop_ladder", {}).get("max_sustained_offered_rps"))
    }
    at = sorted(set(rates.values()))
    extra = ["--at", *map(str, at), "--curve", *map(str, CURVE_SHARES)]
    extra += ["--batch-cars", str(BATCH_CARS), "--single-rate", str(OPEN_LOOP_RATE)]
    found = loop.ladder("ours", *extra, steps=len(CURVE_SHARES) + len(at) + 3)
    ladder = found["ladder"]
    capacity_curve = {
        "arrivals": found["arrivals"],
        "workers": 1,
        "cores": 1,
        "capacity_rps": ladder["max_sustained_rps"],
        # Exactly the contract's fields: the HPA simulation (studies.autoscaling) reads them.
        "steps": [
            {key: step[key] for key in CurveStep.__struct_fields__} for step in found["curve"]
        ],
    }
    result = {
        "open_loop_ladder": ladder,
        "open_loop_curve": found["curve"],
        "capacity_curve": capacity_curve,
        "batch_vs_single": found["batch_vs_single"],
    }
    ours_at = dict(zip(at, found["at"], strict=True))
    for name, rate in rates.items():
        key, steps = f"open_loop_at_{name}_rate", others[name]["open_loop_ladder"]["steps"]
        result[key] = ours_at[rate]
        others[name][key] = next(step for step in steps if step["offered_rps"] == rate)
    return result


def two_workers(
    spec: ServerSpec, port: int, work: Path, args: argparse.Namespace, ours: dict[str, Any]
) -> dict[str, Any]:
    """Ours with 2 workers on the same one core: its ladder and a step at a common rate.

    The common rate is `WORKERS_COMPARED_AT` of one worker's capacity, on the same schedule
    as the curve's step at that share (the same rate and seed).
    """
    command = list(spec.command)
    command[command.index("--workers") + 1] = "2"
    two = spec._replace(name="ours_2_workers", command=tuple(command))
    one = ours["capacity_curve"]
    # No curve when one worker sustained no step: then no common step either.
    common = next((s for s in one["steps"] if s["share"] == WORKERS_COMPARED_AT), None)
    at = ["--at", str(common["offered_rps"])] if common else []
    server = RunningServer(two, port, work / f"{two.name}.log")
    try:
        found = OpenLoopProcess(server, work, args, work / BODIES_FILE).ladder(
            two.name, *at, steps=1
        )
        memory = server.memory()
    finally:
        server.stop()
    return {
        "common_rate_rps": common and common["offered_rps"],
        "1": {"max_sustained_rps": one["capacity_rps"], "at_common_rate": common},
        "2": {
            "max_sustained_rps": found["ladder"]["max_sustained_rps"],
            "at_common_rate": (found["at"] or [None])[0],
            "ladder": found["ladder"],
            "cold_start_s": server.cold_start_s,
            "memory_after_load": memory,
        },
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Everything `make bench` measures, as one JSON-ready dict."""
    started = datetime.now(UTC)
    work = args.work_dir / started.strftime("%Y%m%dT%H%M%SZ")
    work.mkdir(parents=True, exist_ok=True)
    autogroup = Path("/proc/self/autogroup")
    champion, rows = resolve(args.bundle, args.pipeline, args.rows)
    bodies = request_bodies(held_out_rows(rows))
    (work / BODIES_FILE).write_bytes(b"\n".join(bodies))
    if args.peers and champion.pipeline_dir is None:
        raise SystemExit("the peers need the training pipeline (--pipeline): MLServer serves it")
    results: dict[str, Any] = {
        "started_at": started.isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "ram_gb": round(psutil.virtual_memory().total / 1024**3, 1),
        "load_average_before": os.getloadavg(),
        # Co-tenant processes compete with this run per scheduling group (Linux autogroup).
        "autogroup": autogroup.read_text().strip() if autogroup.exists() else None,
        "raw_dir": str(work),
        "model": {"label": champion.label, "pipeline_dir": champion.pipeline_dir},
        "setup": {
            **{
                key: vars(args)[key]
                for key in ("step_seconds", "ladder", "cold_starts", "ab_rounds")
            },
            "open_loop_ladder": args.open_loop_ladder,
            "open_loop_floor_rate": FLOOR_RATE,
            "arrivals": {"open_loop": ARRIVALS, "locust": LOCUST_ARRIVALS},
            **SETUP,
            "server_core": SERVER_CORE,
            "loadgen_core": LOADGEN_CORE,
            "workers": 1,
            "payload_cars": len(bodies),
            "open_loop_rate": OPEN_LOOP_RATE,
        },
    }
    logger.info("model: %s; model benchmark and profile …", champion.label)
    results["model_bench"] = in_process(champion, rows, work, args.quick)
    results["profile"] = results["model_bench"].pop("profile")
    logger.info("environment sizes …")
    results["environment"] = environment_sizes()
    os.sched_setaffinity(0, {LOADGEN_CORE})
    set_cars(bodies)
    # The peers first: ours is then measured at each one's max sustained rate too.
    peers = measure_peers(champion, held_out_rows(rows), args, work) if args.peers else {}
    results["servers"] = servers = measure_servers(champion, args, work, peers)
    results["setup"]["mixed_rate_rps"] = next(iter(servers.values()))["mixed"]["offered_rps"]
    if champion.pipeline_dir is not None:
        # The batch goals' figures: one stage per server cannot resolve 10 % (batch_ab's doc).
        # A refused round or a server that did not start costs these figures, not the run's.
        logger.info("1,000-car batches, ours and the baseline in interleaved rounds …")
        try:
            found = interleaved(
                champion,
                bodies,
                rounds=args.ab_rounds,
                seconds=args.step_seconds,
                log_dir=work / "batch-ab",
            )
        except (ValueError, RuntimeError) as error:
            logger.error("interleaved batch rounds not measured: %s", error)
            results["batch_interleaved"] = {"error": str(error)}
        else:
            for name in found["runs"]:
                servers[name]["batch_interleaved"] = {
                    key: found[key][name] for key in ("median_rows_per_s", "range_rows_per_s")
                }
            results["batch_interleaved"] = found
    servers |= peers
    results["load_average_after"] = os.getloadavg()
    results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    return results


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks and write the results JSON and Markdown."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--bundle", type=Path, help="bundle directory (default: the served one)")
    parser.add_argument("--pipeline", type=Path, help="its training pipeline (LightGBM booster)")
    parser.add_argument("--rows", type=Path, help="parquet of held-out cars (default: test split)")
    parser.add_argument("--step-seconds", type=float, help="per load stage (10; quick: 2)")
    parser.add_argument("--ladder", type=int, nargs="+", default=list(LADDER))
    parser.add_argument("--open-loop-ladder", type=int, nargs="+", default=list(OPEN_LOOP_LADDER))
    parser.add_argument("--cold-starts", type=int, default=COLD_STARTS)
    parser.add_argument(
        "--ab-rounds",
        type=int,
        default=AB_ROUNDS,
        help=f"rounds of 1,000-car batches, ours and the baseline in turn ({AB_ROUNDS}; quick: 1)",
    )
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--work-dir", type=Path, default=WORK_DIR)
    parser.add_argument(
        "--peers",
        action=argparse.BooleanOptionalAction,
        help="also MLServer and BentoML, installed in their own envs (default: on, off --quick)",
    )
    args = parser.parse_args(argv)
    args.peers = not args.quick if args.peers is None else args.peers
    if args.quick:
        args.ladder, args.open_loop_ladder, args.cold_starts = [20], [50, 100], 1
        args.ab_rounds = 1
    if args.ab_rounds < 1:
        parser.error("--ab-rounds must be at least 1")
    args.step_seconds = args.step_seconds or (2.0 if args.quick else 10.0)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("locust").setLevel(logging.WARNING)
    # SIGTERM (a timeout, Ctrl-C in make) unwinds like an exception, so servers are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.perf_counter()
    results = run(args)
    results["duration_s"] = round(time.perf_counter() - started, 1)
    stem = f"{results['started_at'][:10]}-{results['host']}"
    args.out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = args.out_dir / f"{stem}.json", args.out_dir / f"{stem}.md"
    text = json.dumps(results, indent=2, ensure_ascii=False, default=str)
    json_path.write_text(text, encoding="utf-8")
    md_path.write_text(markdown(results, load_goals()), encoding="utf-8")
    logger.info("wrote %s and %s in %.0f s", json_path, md_path, results["duration_s"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
