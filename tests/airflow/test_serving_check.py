"""`verify_serving`'s check against a real server: the version, or a failure naming why."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from car_price.serving import ServingCheckError, wait_for_version

from ..integration.conftest import ServerProcess, free_port, serve

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(model_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """car-serve on the test bundle (model version "1")."""
    with serve(model_bundle, tmp_path_factory.mktemp("serving") / "server.log") as running:
        yield running


def test_passes_once_the_server_answers_the_version(server: ServerProcess) -> None:
    """/ready answering model_version "1" satisfies a wait for "1"."""
    wait_for_version(server.url, "1", timeout_s=5, poll_s=0.1)


def test_fails_naming_the_version_the_server_keeps_answering(server: ServerProcess) -> None:
    """A server still on the old version fails the check with what it answered."""
    with pytest.raises(ServingCheckError) as failure:
        wait_for_version(server.url, "2", timeout_s=0.5, poll_s=0.1)
    message = str(failure.value)
    assert f"{server.url}/ready did not serve model version 2 within 0.5 s" in message
    assert message.endswith("last: model_version 1")


def test_fails_naming_an_unreachable_server() -> None:
    """Nothing listening: the check fails and says the server could not be reached."""
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ServingCheckError, match=r"/ready did not serve .* last: unreachable"):
        wait_for_version(url, "1", timeout_s=0.3, poll_s=0.1)
