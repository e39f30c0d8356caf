"""`make bench`: model level and profile, installed sizes, then Locust against each server.

Results go to `benchmarks/results/<date>-<host>.{json,md}`, logs and raw outputs to
`data/bench/runs/<time>/`. Servers, the model level and the profile run pinned to core 0; this
process (Locust's load generator) pins itself to core 1. See `benchmarks/README.md`.
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

from benchmarks.champion import Champion, held_out_rows, request_bodies, resolve
from benchmarks.load import SETUP, StagePlan, run_plan, set_cars
from benchmarks.report import load_goals, markdown
from benchmarks.servers import LOADGEN_CORE, SERVER_CORE, RunningServer, free_port, server_specs

logger = logging.getLogger("benchmarks")

RESULTS_DIR: Final = Path("benchmarks/results")
WORK_DIR: Final = Path("data/bench/runs")
#: Offered single-car rates (requests/s), climbed until a server stops keeping up.
LADDER: Final = (50, 100, 200, 400, 600, 800, 1000, 1500, 2000, 2500, 3000, 4000)
COLD_STARTS: Final = 3
#: Requests/s of `/predict` and of `/health` each in the open-loop stage (issue goals: 50).
OPEN_LOOP_RATE: Final = 50.0
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
    quick_args = ("--sizes=1,10", "--requests=160", "--benchmark-max-time=0")
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


def measure_servers(champion: Champion, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Cold starts, the stage plan and memory after load, for each server in turn."""
    sustained, port = load_goals().sustained, free_port()
    servers: dict[str, Any] = {}
    mixed_rate: float | None = None
    # The baseline comes first: half its max sustained rate is every server's mixed rate.
    for spec in server_specs(champion, port, work / "prediction-log"):
        cold_starts = []
        for attempt in range(args.cold_starts):
            server = RunningServer(spec, port, work / f"{spec.name}.log")
            cold_starts.append(server.cold_start_s)
            if attempt < args.cold_starts - 1:
                server.stop()
        try:
            plan = StagePlan(
                args.step_seconds, args.ladder, sustained.holds, server.cpu_seconds, mixed_rate
            )
            measured = run_plan(server.url, plan) | {"memory_after_load": server.memory()}
            measured["open_loop"] = open_loop(server.url, work, spec.name, 2 * args.step_seconds)
        finally:
            server.stop()
        mixed_rate = measured["mixed"]["offered_rps"]
        servers[spec.name] = measured | {"title": spec.title, "cold_starts_s": cold_starts}
        logger.info("%s: max sustained %.0f req/s", spec.name, measured["max_sustained_rps"])
    return servers


def open_loop(url: str, work: Path, name: str, seconds: float) -> dict[str, Any]:
    """`benchmarks.openloop` at `OPEN_LOOP_RATE` against `url`: its figures.

    In its own process (Locust's gevent patches this one), on the load-generator core as well.
    """
    out = work / f"{name}-open-loop.json"
    command = [sys.executable, "-m", "benchmarks.openloop", url, "--rate", str(OPEN_LOOP_RATE)]
    command += ["--seconds", str(seconds), "--bodies", str(work / "bodies.jsonl")]
    subprocess.run([*command, "--out", str(out)], check=True, timeout=seconds + 120)
    figures: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return figures


def peers(champion: Champion, rows: Path, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """`benchmarks.peers`: ours against MLServer and BentoML on the open-loop ladder.

    In its own process (Locust's gevent patches this one); it installs the peers' own
    environments on first use. Needs the booster: without it, says why.
    """
    if champion.pipeline_dir is None:
        return {"not_measured": "no LightGBM pipeline given (--pipeline): MLServer serves it"}
    out = work / "peers.json"
    command = [sys.executable, "-m", "benchmarks.peers", "--out", str(out), "--rows", str(rows)]
    command += ["--bundle", str(champion.bundle_dir), "--pipeline", str(champion.pipeline_dir)]
    command += ["--step-seconds", str(args.step_seconds), "--work-dir", str(work)]
    subprocess.run([*command, "--ladder", *map(str, args.ladder)], check=True)
    figures: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return figures


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Everything `make bench` measures, as one JSON-ready dict."""
    started = datetime.now(UTC)
    work = args.work_dir / started.strftime("%Y%m%dT%H%M%SZ")
    work.mkdir(parents=True, exist_ok=True)
    autogroup = Path("/proc/self/autogroup")
    champion, rows = resolve(args.bundle, args.pipeline, args.rows)
    bodies = request_bodies(held_out_rows(rows))
    (work / "bodies.jsonl").write_bytes(b"\n".join(bodies))
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
            **{key: vars(args)[key] for key in ("step_seconds", "ladder", "cold_starts")},
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
    results["servers"] = servers = measure_servers(champion, args, work)
    results["setup"]["mixed_rate_rps"] = next(iter(servers.values()))["mixed"]["offered_rps"]
    if args.peers:
        results["peers"] = peers(champion, rows, args, work)
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
    parser.add_argument("--step-seconds", type=float, help="per load stage (15; quick: 2)")
    parser.add_argument("--ladder", type=int, nargs="+", default=list(LADDER))
    parser.add_argument("--cold-starts", type=int, default=COLD_STARTS)
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
        args.ladder, args.cold_starts = [20], 1
    args.step_seconds = args.step_seconds or (2.0 if args.quick else 15.0)
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
