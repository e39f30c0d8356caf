"""The interleaved batch comparison: its client on a real socket, per-round ratios, refusals."""

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import msgspec
import pytest
from benchmarks.champion import Champion
from benchmarks.goals import load_goals

from benchmarks import batch_ab


class _Handler(BaseHTTPRequestHandler):
    """200 for every body but `b"bad"`, which gets a 500; `b"slow"` is answered after 0.6 s."""

    bodies: ClassVar[list[bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).bodies.append(body)
        if body == b"slow":
            time.sleep(0.6)
        status = 500 if body == b"bad" else 200
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *_: Any) -> None:
        """Quiet."""


@pytest.fixture
def server() -> Iterator[str]:
    """A threading HTTP/1.1 server on a free loopback port; its URL."""
    _Handler.protocol_version = "HTTP/1.1"  # keep-alive, as Granian and uvicorn answer
    _Handler.bodies = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_client_counts_what_was_answered_in_the_window(server: str) -> None:
    """Back to back on every connection; each status counted; rps is the 200s per second."""
    figures = batch_ab.post_back_to_back(
        f"{server}/predict/batch", [b"car"], connections=2, seconds=0.3
    )
    assert set(figures["statuses"]) == {"200"}
    assert figures["statuses"]["200"] > 4  # many requests, not one per connection


def test_an_answer_after_the_window_counts_neither_request_nor_time(server: str) -> None:
    """Answers at 0.6 s and 1.2 s, a 1 s window: one request, over 1 s (not over 1.2 s)."""
    figures = batch_ab.post_back_to_back(
        f"{server}/predict/batch", [b"slow"], connections=1, seconds=1.0
    )
    assert figures["statuses"] == {"200": 1}
    assert len(_Handler.bodies) == 2  # the second was sent, and answered too late
    assert figures["seconds"] == pytest.approx(1.0, abs=0.01)
    assert figures["rps"] == pytest.approx(1 / figures["seconds"])


def test_client_records_an_error_status_and_a_refused_connection(server: str) -> None:
    """A 500 is counted as 500, not as rows; nobody listening is status 0, not an exception."""
    figures = batch_ab.post_back_to_back(
        f"{server}/predict/batch", [b"bad"], connections=1, seconds=0.1
    )
    assert set(figures["statuses"]) == {"500"}
    assert figures["rps"] == 0
    nobody = f"http://127.0.0.1:{batch_ab.free_port()}"  # bound, then closed: refuses
    figures = batch_ab.post_back_to_back(f"{nobody}/x", [b"car"], connections=1, seconds=0.1)
    assert set(figures["statuses"]) == {"0"}


def _run(round_: int, rows: float, statuses: dict[str, int] | None = None) -> dict[str, Any]:
    return {
        "round": round_,
        "rows_per_s": rows,
        "statuses": {"200": 10} if statuses is None else statuses,
        "loadgen_cpu": 0.05,
    }


RUNS = {
    "ours": [_run(0, 45_000), _run(1, 51_000), _run(2, 48_000)],
    "baseline": [_run(0, 15_000), _run(1, 17_000), _run(2, 24_000)],
}


def test_ratios_pair_each_round_with_the_baselines_same_round() -> None:
    """Round by round, not medians over medians; the median of those ratios."""
    summary = batch_ab.summary(RUNS)
    assert summary["ratio_to_baseline"]["ours"] == pytest.approx([3.0, 3.0, 2.0])
    assert "baseline" not in summary["ratio_to_baseline"]
    assert summary["median_rows_per_s"] == {"ours": 48_000, "baseline": 17_000}
    assert summary["range_rows_per_s"]["ours"] == [45_000, 51_000]
    assert summary["median_ratio"]["ours"] == pytest.approx(3.0)  # not 48,000 / 17,000


def test_a_round_with_errors_is_refused_naming_server_and_round() -> None:
    """A 500 among the answers would make rows/s count only what was served: refused."""
    runs = {**RUNS, "baseline": [*RUNS["baseline"][:2], _run(2, 9_000, {"200": 5, "500": 3})]}
    with pytest.raises(ValueError, match=r"baseline, round 2: .*'500': 3"):
        batch_ab.summary(runs)


def test_a_round_with_no_answer_is_refused_not_divided_by() -> None:
    """A baseline that answered nothing in a round: refused by name, no ZeroDivisionError."""
    runs = {**RUNS, "baseline": [_run(0, 0.0, {}), *RUNS["baseline"][1:]]}
    with pytest.raises(ValueError, match=r"baseline, round 0: .*none was \(statuses \{\}\)"):
        batch_ab.summary(runs)


def test_report_lists_every_round_and_how_many_reach_3x() -> None:
    """Per round, each server's rows/s and ours over the baseline; the count at 3× or more."""
    runs = {**RUNS, "ours": [_run(0, 45_000), _run(1, 40_000), _run(2, 48_000)]}
    results = {
        "runs": runs,
        "date": "2026-12-07",
        "host": "vm",
        "cpus": 2,
        "model": "car-price 3",
        "seconds": 8.0,
        "cars": 1000,
        "connections": 4,
        "took_s": 90.0,
    } | batch_ab.summary(runs)
    text = batch_ab.markdown(results, load_goals().target_of(batch_ab.RATIO_FIGURE))
    assert "| ours | 45,000 (40,000–48,000) | 45,000, 40,000, 48,000 | 0.05 |" in text
    assert "- ours: 3.00, 2.35, 2.00 (median **2.35×**; 1 of 3 rounds at 3× or more)" in text


def test_the_round_count_reads_the_ratio_goal() -> None:
    """The 3x the rounds are counted against is the goal's; a goals file without it is refused."""
    goals = load_goals()
    assert goals.target_of(batch_ab.RATIO_FIGURE) == next(
        goal.target for goal in goals.goal if goal.figure == batch_ab.RATIO_FIGURE
    )
    without = msgspec.structs.replace(
        goals, goal=[goal for goal in goals.goal if goal.figure != batch_ab.RATIO_FIGURE]
    )
    with pytest.raises(ValueError, match=batch_ab.RATIO_FIGURE):
        without.target_of(batch_ab.RATIO_FIGURE)


def test_no_pipeline_no_baseline(tmp_path: Path) -> None:
    """The baseline serves the training pipeline: without one, refused before any server starts."""
    with pytest.raises(ValueError, match="training pipeline"):
        batch_ab.interleaved(
            Champion(tmp_path), [b"{}"], rounds=1, seconds=1.0, log_dir=tmp_path / "logs"
        )
