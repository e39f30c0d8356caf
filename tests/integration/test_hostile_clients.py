"""Careless and hostile clients against a real `car-serve`: each gets an answer, none a 5xx.

Through Granian's sockets, which Litestar's test client does not have: bodies sent before the
answer is read, bodies trickled to hold connections, clients hanging up mid-body.
"""

import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import ServerProcess, serve, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.needs("car-serve")]

CAR = (Path(__file__).parents[1] / "data" / "car.json").read_bytes()
#: The default limit: a body a few times larger outgrows the loopback socket buffers, so before
#: the drain a urllib client saw its connection reset, not the 413.
MAX_BODY_BYTES = 2_000_000
BODY_TIMEOUT_S = 1.0
#: Headers of a POST /predict announcing 1,000 body bytes.
HEAD = (
    b"POST /predict HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
    b"Content-Length: 1000\r\n\r\n"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, model_bundle: Path) -> Iterator[ServerProcess]:
    log = tmp_path_factory.mktemp("hostile") / "server.log"
    with serve(
        model_bundle,
        log,
        MAX_BODY_BYTES=str(MAX_BODY_BYTES),
        BODY_TIMEOUT_S=str(BODY_TIMEOUT_S),
    ) as running:
        yield running


def urllib_post(url: str, body: bytes) -> int:
    """POST with urllib, which writes the whole body before it reads the response."""
    request = urllib.request.Request(url, body, {"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def test_urllib_gets_413_for_a_body_over_the_limit(server: ServerProcess) -> None:
    """A client that sends its whole over-limit body before reading gets the 413, not a reset."""
    body = b" " * (3 * MAX_BODY_BYTES + MAX_BODY_BYTES // 2) + CAR
    statuses = [urllib_post(f"{server.url}/predict", body) for _ in range(5)]
    assert statuses == [413] * 5
    assert urllib_post(f"{server.url}/predict", CAR) == 200


def test_slow_bodies_are_answered_408_and_closed(server: ServerProcess) -> None:
    """Connections trickling a body a byte at a time get 408 and are closed after the timeout."""
    before = server.metric('carprice_http_requests_total{route="/predict",status="408"}')
    clients = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(50)]
    answers = dict.fromkeys(clients, b"")
    closed_after: dict[socket.socket, float] = {}
    start = time.monotonic()
    for client in clients:
        client.sendall(HEAD + b"{")
        client.setblocking(False)
    while len(closed_after) < len(clients) and time.monotonic() - start < BODY_TIMEOUT_S + 10:
        time.sleep(0.05)
        for client in clients:
            if client in closed_after:
                continue
            try:
                chunk = client.recv(4096)
            except BlockingIOError:
                try:
                    client.send(b" ")
                except OSError:  # the server closed it while we were not reading
                    closed_after[client] = time.monotonic() - start
                continue
            except OSError:
                closed_after[client] = time.monotonic() - start
                continue
            if chunk:
                answers[client] += chunk
            else:
                closed_after[client] = time.monotonic() - start
    for client in clients:
        client.close()
    assert len(closed_after) == len(clients), "slow connections still open"
    assert max(closed_after.values()) < BODY_TIMEOUT_S + 5
    assert min(closed_after.values()) >= BODY_TIMEOUT_S * 0.9
    assert all(answer.startswith(b"HTTP/1.1 408 ") for answer in answers.values())
    wait_for(
        lambda: (
            server.metric('carprice_http_requests_total{route="/predict",status="408"}')
            == before + len(clients)
        ),
        "the 408s to be counted",
    )


def test_slow_headers_are_closed_after_the_body_timeout(server: ServerProcess) -> None:
    """Connections trickling their headers are closed after BODY_TIMEOUT_S, not Granian's 30 s."""
    clients = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(20)]
    for client in clients:
        client.sendall(b"POST /predict HTTP/1.1\r\nHost: test\r\nX-Slow: ")
    start = time.monotonic()
    open_clients = set(clients)
    while open_clients and time.monotonic() - start < BODY_TIMEOUT_S + 10:
        time.sleep(0.05)
        for client in list(open_clients):
            try:
                client.send(b"a")  # a header value that never ends
            except OSError:  # closed by the server
                open_clients.discard(client)
    elapsed = time.monotonic() - start
    for client in clients:
        client.close()
    assert not open_clients, f"{len(open_clients)} connections still open after {elapsed:.1f} s"
    assert elapsed < BODY_TIMEOUT_S + 5


def test_hanging_up_mid_body_is_the_clients_499_not_a_5xx(server: ServerProcess) -> None:
    """A client that hangs up mid-body is counted with status 499, never as a server error."""
    sample = 'carprice_http_requests_total{route="/predict",status="499"}'
    before = server.metric(sample)
    for _ in range(10):
        with socket.create_connection(("127.0.0.1", server.port)) as client:
            client.sendall(HEAD + CAR[:100])
            time.sleep(0.05)
    wait_for(lambda: server.metric(sample) == before + 10, "the hang-ups to be counted")
    assert 'status="5' not in server.metrics()


def test_every_hostile_request_left_the_server_serving(server: ServerProcess) -> None:
    """After all of the above the server still prices a car and logged no error."""
    assert urllib_post(f"{server.url}/predict", CAR) == 200
    assert "Traceback" not in server.log.read_text()
