"""The open-loop runs of one server: the floor, a rate ladder, fixed steps, batches beside cars.

Built on `benchmarks.openloop` (the generator). Each ladder step sends single cars at its rate
with the framework floor (`/health`, or the server's own cheapest route) at `FLOOR_RATE` in
the same schedule, waits first for the server to go idle,
and records, beside the generator's figures, the CPU the server, this process and all others
used, and whether the generator rather than the server was the limit.

Run as `python -m benchmarks.openloop_runs URL --bodies FILE --out FILE floor|ladder …`
(`--bodies`: one request body per line; `--path`, `--floor-path`: another server's routes;
see `--help`). `benchmarks.run` runs it through `OpenLoopProcess`, in its own process
(Locust's gevent patches the run's), pinned to the load-generator core.
"""

import argparse
import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import psutil

from benchmarks.goals import GeneratorLimited, load_goals
from benchmarks.openloop import (
    ARRIVALS,
    HEALTH,
    Target,
    batch_target,
    predict_target,
    run_schedule,
    run_streams,
)

if TYPE_CHECKING:  # at run time this module is the generator's process: no server code there
    from benchmarks.servers import RunningServer

#: /health requests per second beside every ladder step: the framework floor under that load,
#: a small share of any step, so it does not move the server's capacity.
FLOOR_RATE: Final = 10.0
#: Fewest expected arrivals of a step: a low-rate step runs longer than the step time.
MIN_ARRIVALS: Final = 20


def cpu_busy() -> float:
    """CPU seconds every process of the machine has used."""
    times = psutil.cpu_times()
    return float(times.user + times.nice + times.system + times.irq + times.softirq)


def server_cpu_seconds(pid: int | None) -> float:
    """CPU time the process `pid` and its children have used (0 without a pid)."""
    if pid is None:
        return 0.0
    root = psutil.Process(pid)
    return sum(sum(p.cpu_times()[:2]) for p in [root, *root.children(recursive=True)])


async def settle(server_pid: int | None, idle_cores: float = 0.2, limit_s: float = 30.0) -> None:
    """Wait until the server's CPU use falls below `idle_cores` (at most `limit_s`).

    A server without load shedding still works through requests whose clients gave up after
    an overloaded step; the next step would measure that backlog too.
    """
    deadline = time.perf_counter() + limit_s
    while server_pid is not None and time.perf_counter() < deadline:
        before = server_cpu_seconds(server_pid)
        await asyncio.sleep(0.5)
        if server_cpu_seconds(server_pid) - before < 0.5 * idle_cores:
            return


async def step(
    url: str,
    target: Target,
    rate: float,
    seconds: float,
    *,
    server_pid: int | None,
    limited: GeneratorLimited,
    floor: Target = HEALTH,
    seed: int = 0,
) -> dict[str, Any]:
    """`target` at `rate` with `floor` at `FLOOR_RATE` in the same schedule: its figures.

    The schedule lasts at least long enough for `MIN_ARRIVALS` of `target`. The target's
    figures, plus the CPU (in cores) the server, this process and all others used, the
    floor's percentiles and whether the generator rather than the server was the limit
    (`limited`, goals.toml's rule).
    """
    await settle(server_pid)
    cpu, busy, started = server_cpu_seconds(server_pid), cpu_busy(), time.perf_counter()
    seconds = max(seconds, MIN_ARRIVALS / rate)
    figures = await run_streams(url, [(target, rate), (floor, FLOOR_RATE)], seconds, seed)
    elapsed = time.perf_counter() - started
    server = (server_cpu_seconds(server_pid) - cpu) / elapsed
    result, loadgen = {"offered_rps": rate, **figures[target.name]}, figures["loadgen_cpu"]
    result["seconds"] = seconds
    lag, p50 = result["send_lag_p50_ms"] or 0.0, result["p50_ms"] or 0.0
    return result | {
        "server_cpu_cores": server,
        "loadgen_cpu": loadgen,
        # Other processes meanwhile, in cores: on a shared machine, the co-tenants.
        "others_cpu": (cpu_busy() - busy) / elapsed - server - loadgen,
        "generator_limited": limited.holds(lag, p50, loadgen),
        "floor": {key: figures[floor.name][key] for key in ("requests", "p50_ms", "p99_ms")},
    }


async def ladder(
    url: str,
    target: Target,
    rates: Sequence[float],
    seconds: float,
    *,
    sustained: Callable[[dict[str, Any]], bool],
    limited: GeneratorLimited,
    server_pid: int | None = None,
    floor: Target = HEALTH,
    refine: int = 2,
) -> dict[str, Any]:
    """Steps at `rates` up to the first not sustained, then `refine` bisections below it.

    Returns:
        The steps by offered rate (each with its `sustained` verdict), the max sustained
        rate (highest achieved of a sustained step) and the offered rate of that step.
    """
    steps: list[dict[str, Any]] = []

    async def measure(rate: float) -> bool:
        figures = await step(
            url, target, rate, seconds, server_pid=server_pid, limited=limited, floor=floor
        )
        # Achieved against what the schedule sent: a Poisson count is off its mean by about
        # its square root (4 % of 500 arrivals), which is not the server's doing.
        sent = figures["requests"] / figures["seconds"]
        check = {**figures, "rps": figures["achieved_rps"], "offered_rps": sent}
        check["p95_ms"] = figures["p95_ms"] or 0.0
        figures["sustained"] = figures["p95_ms"] is not None and sustained(check)
        steps.append(figures)
        return bool(figures["sustained"])

    for rate in rates:
        if not await measure(rate):
            break
    held = [s["offered_rps"] for s in steps if s["sustained"]]
    failed = [s["offered_rps"] for s in steps if not s["sustained"]]
    if held and failed:
        low, high = max(held), min(failed)
        for _ in range(refine):
            middle = float(round((low + high) / 2))
            if middle in (low, high):
                break
            low, high = (middle, high) if await measure(middle) else (low, middle)
    steps.sort(key=lambda s: s["offered_rps"])
    best = max((s for s in steps if s["sustained"]), key=lambda s: s["achieved_rps"], default={})
    return {
        "steps": steps,
        "max_sustained_rps": best.get("achieved_rps", 0.0),
        "max_sustained_offered_rps": best.get("offered_rps"),
    }


async def batch_vs_single(
    url: str, single: Target, batch: Target, rate: float, seconds: float
) -> dict[str, Any]:
    """Single cars at `rate` (open loop) alone, batches back to back alone, then both at once."""
    alone = await run_streams(url, [(single, rate)], seconds)
    batches = await run_streams(url, [], seconds, closed=batch)
    both = await run_streams(url, [(single, rate)], seconds, closed=batch)
    return {
        "single_rate": rate,
        "singles_alone": alone[single.name],
        "batches_alone": batches[batch.name],
        "with_batches": {"single": both[single.name], "batch": both[batch.name]},
    }


async def plan(args: argparse.Namespace, bodies: list[bytes]) -> dict[str, Any]:
    """What the command line asks for, as one JSON-ready dict."""
    single = predict_target(bodies, args.path)._replace(content_type=args.content_type)
    floor = HEALTH._replace(path=args.floor_path)
    if args.mode == "floor":
        return await run_schedule(args.url, args.rate, args.seconds, single, floor)
    goals = load_goals()
    result: dict[str, Any] = {"arrivals": ARRIVALS, "floor_rate": FLOOR_RATE}
    pid, limited = args.server_pid, goals.generator_limited

    async def at(rate: float) -> dict[str, Any]:
        return await step(
            args.url, single, rate, args.seconds, server_pid=pid, limited=limited, floor=floor
        )

    found = await ladder(
        args.url,
        single,
        args.rates,
        args.seconds,
        sustained=goals.sustained.holds,
        limited=limited,
        server_pid=pid,
        floor=floor,
        refine=args.refine,
    )
    result["ladder"] = found
    result["at"] = [await at(rate) for rate in args.at]
    capacity = found["max_sustained_rps"]
    result["curve"] = [
        await at(round(share * capacity, 1)) | {"share": share}
        for share in (args.curve if capacity else [])
    ]
    if args.batch_cars:
        batch = batch_target(bodies, args.batch_cars)
        result["batch_vs_single"] = await batch_vs_single(
            args.url, single, batch, args.single_rate, args.seconds
        )
        result["batch_vs_single"]["batch_cars"] = args.batch_cars
    return result


class OpenLoopProcess:
    """This module's command line against one running server, in its own process.

    Its own process because Locust's gevent patches the caller's; it inherits the caller's
    core (the load generator's). Each call writes its JSON into `work`. The server's spec
    names its routes; `bodies` holds its one-car requests, one a line.
    """

    def __init__(
        self, server: "RunningServer", work: Path, args: argparse.Namespace, bodies: Path
    ) -> None:
        self.server, self.work, self.args, self.bodies = server, work, args, bodies

    def run(self, name: str, mode: list[str], seconds: float) -> dict[str, Any]:
        """One plan of about `seconds` (a ladder's steps: fewer if it stops early)."""
        out, step, spec = (
            self.work / f"{name}-open-loop.json",
            self.args.step_seconds,
            self.server.spec,
        )
        command = [sys.executable, "-m", "benchmarks.openloop_runs", self.server.url]
        command += ["--bodies", str(self.bodies), "--out", str(out)]
        command += ["--path", spec.predict_path, "--floor-path", spec.health_path]
        command += ["--seconds", str(seconds if mode[0] == "floor" else step)]
        command += ["--server-pid", str(self.server.process.pid)]
        # A step may outlast its length (MIN_ARRIVALS, its last answers): a generous bound.
        timeout = 3 * seconds + 120
        subprocess.run([*command, *mode], check=True, timeout=timeout)
        figures: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
        return figures

    def ladder(self, name: str, *extra: str, steps: int = 0) -> dict[str, Any]:
        """The single-car ladder up to the first unsustained step, then `extra` options."""
        rates = [str(rate) for rate in self.args.open_loop_ladder]
        seconds = (steps + len(rates) + 2) * self.args.step_seconds
        return self.run(f"{name}-ladder", ["ladder", "--rates", *rates, *extra], seconds)


def main(argv: list[str] | None = None) -> int:
    """Run one plan against a server and write its figures as JSON."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.openloop_runs", description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--bodies", type=Path, required=True, help="one request body per line")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=10.0, help="per step")
    parser.add_argument("--path", default="/predict", help="single-car path")
    parser.add_argument("--content-type", default="application/json")
    parser.add_argument("--floor-path", default=HEALTH.path, help="the framework floor's path")
    parser.add_argument("--server-pid", type=int, help="its CPU time is read per step")
    modes = parser.add_subparsers(dest="mode", required=True)
    floor = modes.add_parser("floor", help="single cars and the floor at one rate each")
    floor.add_argument("--rate", type=float, default=50.0, help="req/s of each kind")
    steps = modes.add_parser("ladder", help="a rate ladder, then fixed steps")
    steps.add_argument("--rates", type=float, nargs="+", required=True)
    steps.add_argument("--refine", type=int, default=2, help="bisections after the ladder")
    steps.add_argument("--at", type=float, nargs="*", default=[], help="steps at these rates")
    steps.add_argument("--curve", type=float, nargs="*", default=[], help="shares of capacity")
    steps.add_argument("--batch-cars", type=int, help="run the batch-vs-single scenario")
    steps.add_argument("--single-rate", type=float, default=50.0, help="in that scenario")
    args = parser.parse_args(argv)
    bodies = args.bodies.read_bytes().splitlines()
    figures = asyncio.run(plan(args, bodies))
    args.out.write_text(json.dumps(figures, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
