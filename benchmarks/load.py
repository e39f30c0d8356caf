"""Load: Locust users for `/predict` and `/predict/batch`, and each server's run as a shape.

`benchmarks.run` drives Locust as a library in its own process (pinned to the load-generator
core): one `StagePlan` (a `LoadTestShape`) per server. Every stage's figures are Locust's own
statistics, reset once the stage's users have spawned. Locust's response-time buckets (whole
milliseconds below 100 ms, two digits above) are replaced by 10 µs ones through
`locust.stats.bucket_response_time`, which Locust documents as replaceable.

Arrivals of a fixed-rate stage: each user sends evenly spaced requests at `PER_USER_RATE`,
with a random phase of its own (its first request after a wait drawn uniformly in one period),
so the users' timers do not fire together; a slot the user missed while waiting for an answer
is skipped, not sent late (a closed loop: the open-loop generator is `benchmarks.openloop`).
"""

import math
import random
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, ClassVar, Final, NamedTuple

import gevent
from locust import FastHttpUser, LoadTestShape, User, constant, task

from benchmarks.openloop import BATCH_USERS, batch_body
from benchmarks.openloop_runs import cpu_busy

#: Requests per second each user of a fixed-rate stage offers: 100 ms per request, the p95
#: bound of "sustained", so a user never has two requests in flight while the server keeps up.
PER_USER_RATE: Final = 10.0
SATURATION_USERS: Final = 64
LOCUST_ARRIVALS: Final = (
    f"Locust: {PER_USER_RATE:g} req/s per user, evenly spaced from a random phase per user, "
    "closed loop (a missed slot is skipped)"
)
SETUP: Final = {
    "per_user_rate": PER_USER_RATE,
    "saturation_users": SATURATION_USERS,
    "batch_users": BATCH_USERS,
}
_HEADERS: Final = {"Content-Type": "application/json"}
_BODIES: Final = 32  # request bodies per batch size


class _Cars(FastHttpUser):
    abstract = True
    #: Request bodies by cars per request: one car goes to `/predict`, more to `/predict/batch`.
    bodies: ClassVar[dict[int, list[bytes]]] = {}

    def post(self, size: int, name: str | None = None) -> None:
        path = "/predict" if size == 1 else "/predict/batch"
        self.client.post(path, data=random.choice(self.bodies[size]), headers=_HEADERS, name=name)


class _Paced(_Cars):
    """Evenly spaced requests at `PER_USER_RATE`, from a random phase of this user's own.

    Locust's `constant_throughput` starts every user's timer at its spawn, and a stage's users
    spawn within a second of each other: their requests then go out in bursts. Here each user
    first waits a uniform share of one period, then keeps to its own grid of send times.
    """

    abstract = True

    def on_start(self) -> None:
        self._due = time.monotonic() + random.uniform(0, 1 / PER_USER_RATE)
        gevent.sleep(self._due - time.monotonic())

    def wait_time(self) -> float:
        # The next slot of the grid not already past: a missed slot is skipped, not bunched.
        period, now = 1 / PER_USER_RATE, time.monotonic()
        self._due += period * max(1, math.ceil((now - self._due) / period))
        return max(0.0, self._due - now)


class PredictUser(_Paced):
    """One car per `/predict` request, at a fixed rate per user."""

    @task
    def predict(self) -> None:
        self.post(1)


class SaturationUser(PredictUser):
    """One car per `/predict` request, the next as soon as the last is answered."""

    wait_time = constant(0)

    def on_start(self) -> None:
        """No phase: this user sends without waiting."""


class Batch100User(_Cars):
    """100 cars per `/predict/batch` request, without waiting."""

    wait_time = constant(0)
    size: ClassVar[int] = 100

    @task
    def predict_batch(self) -> None:
        self.post(self.size)


class Batch1000User(Batch100User):
    """1,000 cars per `/predict/batch` request, without waiting."""

    size = 1000


class MixedUser(_Paced):
    """A marketplace's traffic at a fixed rate per user (view, search page, bulk, probe)."""

    tasks: ClassVar[dict[Callable[[Any], None], int]] = {
        PredictUser.predict: 90,
        lambda user: user.post(10, name="batch10"): 7,
        lambda user: user.post(100, name="batch100"): 1,
        lambda user: user.client.get("/ready"): 2,
    }


def set_cars(cars: list[bytes], seed: int = 0) -> None:
    """Request bodies for every user: single cars as given, batches drawn from them."""
    rng = random.Random(seed)
    batches = {n: [batch_body(cars, n, rng) for _ in range(_BODIES)] for n in (10, 100, 1000)}
    _Cars.bodies = {1: cars} | batches


class Stage(NamedTuple):
    """`users` of one class for `seconds`, counted once they have all spawned."""

    name: str
    user_class: type[User]
    users: int
    seconds: float
    offered_rps: float | None = None  # for fixed-rate stages: users × PER_USER_RATE


def _fixed_rate(name: str, user_class: type[User], rate: float, seconds: float) -> Stage:
    users = max(1, math.ceil(rate / PER_USER_RATE))
    return Stage(name, user_class, users, seconds, users * PER_USER_RATE)


class StagePlan(LoadTestShape):
    """Warm-up, the ladder up to its first unsustained step, saturation, batches, mixed.

    Args:
        step_s: Seconds per stage (the warm-up: at most 5).
        ladder: Offered single-car rates, climbed in order.
        sustained: Whether a fixed-rate step's figures count as sustained.
        server_cpu: CPU seconds the server has used so far.
        mixed_rate: Offered rate of the mixed stage; None: half this server's max sustained.
    """

    def __init__(
        self,
        step_s: float,
        ladder: list[int],
        sustained: Callable[[dict[str, Any]], bool],
        server_cpu: Callable[[], float],
        mixed_rate: float | None,
    ) -> None:
        super().__init__()
        self.pending = [
            _fixed_rate("warmup", PredictUser, 4 * PER_USER_RATE, min(step_s, 5.0)),
            *(_fixed_rate(f"single_{rate}", PredictUser, rate, step_s) for rate in ladder),
            Stage("saturation", SaturationUser, SATURATION_USERS, step_s),
            Stage("batch_100", Batch100User, BATCH_USERS, step_s),
            Stage("batch_1000", Batch1000User, BATCH_USERS, step_s),
            Stage("mixed", MixedUser, 0, step_s),  # users once its rate is known
        ]
        self.sustained, self.server_cpu, self.mixed_rate = sustained, server_cpu, mixed_rate
        self.stage: Stage | None = None
        self.ladder: list[dict[str, Any]] = []
        self.results: dict[str, Any] = {"ladder": self.ladder}
        self.statuses: Counter[int] = Counter()  # the window's responses by HTTP status (0: none)
        self.open_window()

    def open_window(self, **_: Any) -> None:
        """Start the measured window: at a stage's start, and again once its users spawned."""
        if self.runner is not None:
            self.runner.stats.reset_all()
        self.statuses.clear()
        self.window = time.perf_counter(), time.process_time(), self.server_cpu(), cpu_busy()

    def tick(self) -> tuple[int, float, list[type[User]] | None] | None:
        assert self.runner is not None
        if (stage := self.stage) is not None:
            if time.perf_counter() - self.window[0] < stage.seconds:
                return stage.users, stage.users, [stage.user_class]
            self._record(stage)
            self.stage = None
        if not self.pending:
            return None
        # Locust stops the most recently started users when the count falls, whatever their
        # class: the users of other classes than the next stage's are all stopped first.
        next_class = self.pending[0].user_class.__name__
        if self.runner.user_count > self.runner.user_classes_count.get(next_class, 0):
            return 0, self.runner.user_count, None
        self.stage = stage = self.pending.pop(0)
        if stage.name == "mixed":
            rate = self.mixed_rate or max(10.0, round(self.max_sustained() / 2, -1))
            self.stage = stage = _fixed_rate(stage.name, stage.user_class, rate, stage.seconds)
        self.open_window()
        return stage.users, stage.users, [stage.user_class]

    def count_status(self, response: Any = None, **_: Any) -> None:
        """Locust's `request` event: count the response's status (0 when none came)."""
        self.statuses[getattr(response, "status_code", None) or 0] += 1

    def max_sustained(self) -> float:
        """The highest achieved rate of a sustained ladder step (0 if none)."""
        return max((step["rps"] for step in self.ladder if step["sustained"]), default=0.0)

    def _record(self, stage: Stage) -> None:
        assert self.runner is not None
        started, loadgen_cpu, server_cpu, busy_cpu = self.window
        seconds = time.perf_counter() - started
        server = (self.server_cpu() - server_cpu) / seconds
        loadgen = (time.process_time() - loadgen_cpu) / seconds
        total, entries = self.runner.stats.total, self.runner.stats.entries
        figures: dict[str, Any] = {
            "stage": stage.name,
            "users": stage.users,
            "offered_rps": stage.offered_rps,
            "seconds": seconds,
            "rps": total.total_rps,
            "requests": total.num_requests,
            "failures": total.num_failures,
            "failure_rate": total.fail_ratio,
            "statuses": {str(code): n for code, n in sorted(self.statuses.items())},
            **{f"p{p}_ms": total.get_response_time_percentile(p / 100) for p in (50, 95, 99)},
            "server_cpu": server,
            "loadgen_cpu": loadgen,
            # CPU other processes used meanwhile (in cores): on a shared machine, the co-tenants.
            "others_cpu": (cpu_busy() - busy_cpu) / seconds - server - loadgen,
            "by_name": {key[0]: e.num_requests for key, e in entries.items() if e.num_requests},
        }
        if stage.offered_rps is not None:
            figures["sustained"] = self.sustained(figures)
        if stage.name.startswith("single_"):
            self.ladder.append(figures)
            if not figures["sustained"]:  # the ladder ends here
                self.pending = [s for s in self.pending if not s.name.startswith("single_")]
        elif stage.name.startswith("batch_"):
            size = stage.name.removeprefix("batch_")
            figures["rows_per_s"] = figures["rps"] * int(size)
            self.results.setdefault("batch", {})[size] = figures
        elif stage.name != "warmup":
            self.results[stage.name] = figures


def run_plan(host: str, plan: StagePlan) -> dict[str, Any]:
    """Run `plan` against `host` with Locust in this process: the figures of every stage.

    Raises:
        RuntimeError: A user raised an exception (a bug here, not a failed request).
    """
    import locust.stats
    from locust.env import Environment

    locust.stats.bucket_response_time = lambda response_time: round(response_time, 2)
    env = Environment(
        user_classes=[PredictUser, SaturationUser, Batch100User, Batch1000User, MixedUser],
        shape_class=plan,
        host=host,
        # Users of a finished stage are stopped at once: their last requests are not counted.
        stop_timeout=0.0,
    )
    runner = env.create_local_runner()
    env.events.spawning_complete.add_listener(plan.open_window)
    env.events.request.add_listener(plan.count_status)
    runner.start_shape()
    assert runner.shape_greenlet is not None
    runner.shape_greenlet.get()  # re-raises what the shape raised
    runner.quit()
    if runner.exceptions:
        raise RuntimeError(f"Locust users raised: {list(runner.exceptions.values())[:3]}")
    return plan.results | {"max_sustained_rps": plan.max_sustained()}
