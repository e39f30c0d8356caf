"""`make bench`: the model benchmark, then one Locust ladder against each server, side by side.

Results go to `benchmarks/results/<date>-<host>.json` and `.md` (ratios ours / baseline).

Fairness on a two-core machine: every server runs one worker pinned to core 0 (`taskset`),
the load generator is pinned to core 1, targets are on 127.0.0.1 only. Each Locust step is
bounded in time; the single-car ladder stops at the first rate a server does not sustain.

    python -m benchmarks.run                  # the full run (about 11 minutes)
    python -m benchmarks.run --quick          # a seconds-long smoke run (the test uses it)
"""

import argparse
import json
import logging
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from benchmarks.champion import Champion, load_champion
from benchmarks.data import car_dicts, held_out_rows, write_payloads
from benchmarks.load import Sustained, ladder_users, run_locust
from benchmarks.report import markdown
from benchmarks.servers import SERVER_CORE, RunningServer, free_port, server_specs

logger = logging.getLogger("benchmarks")

RESULTS_DIR: Final = Path("benchmarks/results")
WORK_DIR: Final = Path("data/bench/runs")
#: Offered single-car rates (requests/s), climbed until a server stops keeping up.
LADDER: Final = (50, 100, 200, 400, 600, 800, 1000, 1500, 2000, 2500, 3000, 4000)
SATURATION_USERS: Final = 64
BATCH_USERS: Final = 4
BATCH_SIZES: Final = (100, 1000)
COLD_STARTS: Final = 3
SUSTAINED: Final = Sustained()


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    import psutil

    model = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "host": socket.gethostname(),
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "ram_gb": round(psutil.virtual_memory().total / 1024**3, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def _autogroup() -> str | None:
    path = Path("/proc/self/autogroup")
    return path.read_text(encoding="utf-8").strip() if path.exists() else None


def git_commit() -> str:
    """The commit the benchmarks ran at (with "+dirty" for local changes)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def tree_size(path: Path) -> int:
    """Apparent size in bytes of the files under `path` (symlinks not followed)."""
    total = 0
    for item in path.rglob("*"):
        if item.is_file() and not item.is_symlink():
            total += item.lstat().st_size
    return total


def environment_sizes() -> dict[str, Any]:
    """Installed size of an inference-only environment (from uv.lock) vs the full one."""
    full = Path(sys.prefix) / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    full_site = full / "site-packages"
    result: dict[str, Any] = {"full_mb": tree_size(full_site) / 1024**2}
    uv = shutil.which("uv")
    if uv is None:
        result["inference_only_mb"] = None
        result["note"] = "uv not on PATH: inference-only environment not built"
        return result
    with tempfile.TemporaryDirectory(prefix="bench-env-") as tmp:
        env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(Path(tmp) / "venv")}
        env.pop("VIRTUAL_ENV", None)
        command = [uv, "sync", "--frozen", "--package", "inference", "--no-default-groups"]
        command += ["--no-editable", "--quiet"]
        completed = subprocess.run([*command, "--offline"], env=env, check=False)
        if completed.returncode != 0:  # not everything in uv's cache: allow the index
            subprocess.run(command, env=env, check=True)
        sites = list((Path(tmp) / "venv").glob("lib/python*/site-packages"))
        result["inference_only_mb"] = tree_size(sites[0]) / 1024**2
        result["inference_only_packages"] = sorted(
            item.name.split("-")[0] for item in sites[0].glob("*.dist-info")
        )
    result["how"] = "uv sync --frozen --package inference into a fresh venv; site-packages size"
    return result


def model_benchmark(work: Path, which: str, quick: bool) -> dict[str, Any]:
    """Run `benchmarks.model_bench` pinned to the server core, in its own process."""
    out = work / "model.json"
    command = ["taskset", "-c", str(SERVER_CORE), sys.executable, "-m", "benchmarks.model_bench"]
    command += ["--out", str(out), "--model", which, *(["--quick"] if quick else [])]
    subprocess.run(command, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return result


def profile(work: Path, which: str, quick: bool) -> dict[str, Any]:
    """Run `benchmarks.profile` pinned to the server core, in its own process."""
    out = work / "profile.json"
    command = ["taskset", "-c", str(SERVER_CORE), sys.executable, "-m", "benchmarks.profile"]
    command += ["--out", str(out), "--model", which, "--requests", "160" if quick else "4000"]
    subprocess.run(command, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return result


def start_with_cold_starts(
    spec: Any, port: int, work: Path, starts: int
) -> tuple[RunningServer, list[float]]:
    """Start the server `starts` times (each timed process start → /ready 200); keep the last.

    Returns:
        The last, running server and every cold start in seconds.
    """
    timings: list[float] = []
    server: RunningServer | None = None
    for attempt in range(starts):
        if server is not None:
            server.stop()
        server = RunningServer(spec, port, work / f"{spec.name}.log")
        timings.append(server.cold_start_s)
        logger.info("%s: cold start %d: %.2f s", spec.name, attempt + 1, server.cold_start_s)
    if server is None:
        raise ValueError("starts must be at least 1")
    return server, timings


def measure_server(
    server: RunningServer,
    *,
    payloads: Path,
    work: Path,
    step_s: float,
    ladder: tuple[int, ...],
    mixed_rate: float | None,
) -> dict[str, Any]:
    """The ladder, a saturation run, the batch runs and the mixed run against one server.

    The mixed scenario runs at `mixed_rate`, or, when None, at half this server's max
    sustained single-car rate (the baseline is measured first and sets it for all).
    """
    name = server.spec.name

    def locust(label: str, user_class: str, users: int, rate: float, **kw: Any) -> dict[str, Any]:
        step = run_locust(
            server,
            user_class,
            users=users,
            user_rate=rate,
            seconds=step_s,
            payloads=payloads,
            out_dir=work / name,
            label=label,
            **kw,
        )
        logger.info(
            "%s %-14s %7.1f rps  p50 %6.2f  p95 %7.2f  p99 %7.2f ms  fail %.3f  cpu %.2f/%.2f",
            name,
            label,
            step["rps"],
            step["p50_ms"],
            step["p95_ms"],
            step["p99_ms"],
            step["failure_rate"],
            step["server_cpu"],
            step["loadgen_cpu"],
        )
        return step

    # Untimed warm-up so neither server is measured on its first requests.
    warmup = run_locust(
        server,
        "PredictUser",
        users=4,
        user_rate=10.0,
        seconds=min(step_s, 5.0),
        payloads=payloads,
        out_dir=work / name,
        label="warmup",
    )
    logger.info("%s warm-up: %d requests, %d failed", name, warmup["requests"], warmup["failures"])
    steps = []
    for rate in ladder:
        users, per_user = ladder_users(rate)
        step = locust(f"single_{rate}", "PredictUser", users, per_user)
        step["sustained"] = SUSTAINED.holds(step)
        steps.append(step)
        if not step["sustained"]:
            break
    result: dict[str, Any] = {"ladder": steps}
    result["saturation"] = locust("saturation", "PredictUser", SATURATION_USERS, 0.0)
    result["batch"] = {
        str(size): locust(f"batch_{size}", "BatchUser", BATCH_USERS, 0.0, batch_size=size)
        for size in BATCH_SIZES
    }
    for size, step in result["batch"].items():
        step["rows_per_s"] = step["rps"] * int(size)
    if mixed_rate is None:  # the first server measured sets the rate for all
        mixed_rate = max(10.0, round(max_sustained(steps) / 2, -1))
    users, per_user = ladder_users(mixed_rate)
    result["mixed"] = locust("mixed", "MixedUser", users, per_user, batch_size=100)
    result["mixed"]["sustained"] = SUSTAINED.holds(result["mixed"])
    result["memory_after_load"] = server.memory()
    return result


def max_sustained(steps: list[dict[str, Any]]) -> float:
    """Highest achieved RPS among the sustained ladder steps (0 if none)."""
    return max((step["rps"] for step in steps if step.get("sustained")), default=0.0)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Everything `make bench` measures, as one JSON-ready dict."""
    started = datetime.now(UTC)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    work = WORK_DIR / stamp
    work.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    champion: Champion = load_champion(which=args.model)
    logger.info("model: %s", champion.label)
    # Real held-out cars, written outside the repository for the load generator.
    cars = car_dicts(held_out_rows(standin=champion.standin))
    payloads = write_payloads(cars, work / "payloads.json")

    results: dict[str, Any] = {
        "started_at": started.isoformat(timespec="seconds"),
        "commit": git_commit(),
        "machine": machine(),
        "load_average_before": load_before,
        # The scheduling group of this run and its servers: co-tenant processes on the machine
        # compete with it per group (Linux autogroup), whatever their own nice value.
        "autogroup": _autogroup(),
        "model": {
            "label": champion.label,
            "standin": champion.standin,
            "model_version": champion.model_version,
        },
        "setup": {
            "server_core": SERVER_CORE,
            "loadgen_core": 1,
            "workers": 1,
            "step_seconds": args.step_seconds,
            "ladder_rps": list(args.ladder),
            "per_user_rate": "ceil(rate / 10) users, each at rate/users req/s",
            "sustained": SUSTAINED.__dict__,
            "saturation_users": SATURATION_USERS,
            "batch_users": BATCH_USERS,
            "payload_cars": len(cars),
        },
    }
    if not args.skip_model:
        logger.info("model benchmark …")
        results["model_bench"] = model_benchmark(work, args.model, args.quick)
    logger.info("profiles …")
    results["profile"] = profile(work, args.model, args.quick)
    logger.info("environment sizes …")
    results["environment"] = environment_sizes()

    port = free_port()
    specs = {spec.name: spec for spec in server_specs(champion, port, 1)}
    servers: dict[str, Any] = {}
    mixed_rate: float | None = None
    # The baseline first: it sets the mixed scenario's rate (half its max sustained rate).
    for name in ("baseline", "ours", "ours_unbatched"):
        spec = specs[name]
        server, cold_starts = start_with_cold_starts(spec, port, work, args.cold_starts)
        try:
            measured = measure_server(
                server,
                payloads=payloads,
                work=work,
                step_s=args.step_seconds,
                ladder=tuple(args.ladder),
                mixed_rate=mixed_rate,
            )
        finally:
            server.stop()
        measured["title"] = spec.title
        measured["cold_starts_s"] = cold_starts
        measured["max_sustained_rps"] = max_sustained(measured["ladder"])
        servers[name] = measured
        mixed_rate = measured["mixed"]["offered_rps"]
        results["setup"]["mixed_rate_rps"] = mixed_rate
    results["servers"] = servers
    results["load_average_after"] = os.getloadavg()
    results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    results["raw_dir"] = str(work)
    return results


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks and write the results JSON and Markdown."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="seconds-long smoke run")
    parser.add_argument("--model", default="auto", choices=["auto", "real", "standin"])
    parser.add_argument("--step-seconds", type=float, default=15.0)
    parser.add_argument("--ladder", type=int, nargs="+", default=list(LADDER))
    parser.add_argument("--cold-starts", type=int, default=COLD_STARTS)
    parser.add_argument("--skip-model", action="store_true", help="no model-level benchmark")
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    if args.quick:
        args.step_seconds, args.ladder, args.cold_starts = 2.0, [20], 1
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    # SIGTERM (a timeout, Ctrl-C in make) unwinds like an exception, so servers are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.perf_counter()
    results = run(args)
    results["duration_s"] = round(time.perf_counter() - started, 1)
    host = results["machine"]["host"]
    stem = f"{results['started_at'][:10]}-{host}"
    args.out_dir.mkdir(parents=True, exist_ok=True)
    json_path = args.out_dir / f"{stem}.json"
    json_path.write_text(json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8")
    md_path = args.out_dir / f"{stem}.md"
    md_path.write_text(markdown(results), encoding="utf-8")
    logger.info("wrote %s and %s in %.0f s", json_path, md_path, results["duration_s"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
