"""The peers' configuration, requests and report hold together; no network, no timings.

The peers' own environments are built by the benchmark (`benchmarks.peers.envs`), not by the
test run: the tests that need one (MLServer's settings classes, the BentoML service serving
the test bundle) skip, saying so, when it is absent.
"""

import json
import math
import re
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pandas as pd
import pytest
from benchmarks.figures import goal_rows
from benchmarks.goals import load_goals
from benchmarks.peers.compare import parity
from benchmarks.peers.envs import BENTOML, MLSERVER, PEERS_DIR, PeerEnv
from benchmarks.peers.specs import (
    bentoml_bodies,
    bentoml_peer,
    mlserver_bodies,
    mlserver_repository,
)
from benchmarks.servers import RunningServer

from inference.model import load_bundle
from inference.settings import Settings
from shared_schema import Car

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE_CAR = json.loads((REPO_ROOT / "tests" / "data" / "car.json").read_text("utf-8"))
_PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==(\S+)$")


class _Cars(msgspec.Struct, forbid_unknown_fields=True):
    cars: list[Car]


def _pins(path: Path) -> dict[str, str]:
    """`name==version` lines of a requirements file (comments and blank lines skipped)."""
    lines = [line.split("#")[0].strip() for line in path.read_text("utf-8").splitlines()]
    found = {}
    for line in filter(None, lines):
        match = _PIN.match(line)
        assert match, f"{path.name}: not an exact pin: {line!r}"
        found[match.group(1).lower()] = match.group(2)
    return found


@pytest.mark.parametrize("peer", ["mlserver", "bentoml"])
def test_each_peer_installs_exact_pins_that_agree_with_its_inputs(peer: str) -> None:
    """requirements.txt pins every package exactly; its `==` inputs are pinned the same."""
    compiled = _pins(PEERS_DIR / peer / "requirements.txt")
    text = (PEERS_DIR / peer / "requirements.in").read_text("utf-8")
    for name, version in re.findall(r"(?m)^([A-Za-z0-9_.\-]+)==(\S+)", text):
        assert compiled.get(name.lower()) == version, name


def test_mlserver_runs_the_lightgbm_runtime_in_process_without_extras() -> None:
    """One core: inference in the server process, no metrics server, no access log, no gzip.

    Adaptive batching needs a positive `max_batch_time` (MLServer turns it off at 0).
    """
    server = json.loads((PEERS_DIR / "mlserver" / "settings.json").read_text("utf-8"))
    model = json.loads((PEERS_DIR / "mlserver" / "model-settings.json").read_text("utf-8"))
    assert server["parallel_workers"] == 0
    assert server["metrics_endpoint"] is None
    assert server["debug"] is False
    assert server["gzip_enabled"] is False
    assert model["implementation"] == "mlserver_lightgbm.LightGBMModel"
    assert 0 < model["max_batch_time"] <= 0.005


def test_mlserver_repository_serves_the_booster_with_our_batch_size(tmp_path: Path) -> None:
    """The run's model settings name the booster and take ours' most rows per batch."""
    booster = tmp_path / "booster.txt"
    booster.write_text("tree\n", "utf-8")
    written = mlserver_repository(booster, tmp_path / "repo")
    model = written["model-settings.json"]
    on_disk = json.loads((tmp_path / "repo" / model["name"] / "model-settings.json").read_bytes())
    assert on_disk == model
    assert model["parameters"]["uri"] == str(booster.resolve())
    assert model["max_batch_size"] == Settings().batch_max_rows
    assert (tmp_path / "repo" / "settings.json").is_file()


def test_mlserver_bodies_are_v2_requests_with_null_for_missing() -> None:
    """One FP64 row per request; NaN becomes null (strict JSON), the rest is kept exactly."""
    matrix = np.array([[1.5, math.nan, 3.0], [4.0, 5.25, 6.0]])
    bodies = mlserver_bodies(matrix)
    assert len(bodies) == 2
    first = json.loads(bodies[0], parse_constant=pytest.fail)  # no NaN literal
    (tensor,) = first["inputs"]
    assert tensor["shape"] == [1, 3]
    assert tensor["datatype"] == "FP64"
    assert tensor["data"] == [1.5, None, 3.0]
    assert json.loads(bodies[1])["inputs"][0]["data"] == [4.0, 5.25, 6.0]


def test_bentoml_bodies_hold_one_valid_car_each_in_order() -> None:
    """Each body decodes strictly into one `Car`, the frame's rows in order."""
    frame = pd.DataFrame([SAMPLE_CAR, {**SAMPLE_CAR, "mileage": 7, "engine_displacement": None}])
    decoded = [msgspec.json.decode(body, type=_Cars).cars for body in bentoml_bodies(frame)]
    assert [len(cars) for cars in decoded] == [1, 1]
    assert [cars[0].mileage for cars in decoded] == [SAMPLE_CAR["mileage"], 7]
    assert decoded[1][0].engine_displacement is None


def test_bentoml_spec_starts_pinned_with_our_limits(model_bundle: Path, tmp_path: Path) -> None:
    """The BentoML server: its env's `bentoml serve`, readiness, the batch limits from home."""
    peer = bentoml_peer(model_bundle, pd.DataFrame([SAMPLE_CAR]), tmp_path)
    assert peer.spec.command[0] == str(BENTOML.bin / "bentoml")
    assert "service:CarPrice" in peer.spec.command
    assert str(peer.port) in peer.spec.command
    assert (peer.spec.ready_path, peer.spec.health_path) == ("/readyz", "/livez")
    assert peer.spec.env["PEER_MAX_BATCH_SIZE"] == str(Settings().batch_max_rows)
    assert float(peer.spec.env["PEER_MAX_LATENCY_MS"]) == load_goals().sustained.max_p95_ms
    assert peer.spec.env["BENTOML_DO_NOT_TRACK"] == "true"
    assert peer.price(b'[{"price_rub": 1234.5, "model_version": "1"}]') == 1234.5


def test_env_fingerprint_follows_what_the_env_is_built_from(tmp_path: Path) -> None:
    """A changed workspace package makes its peer's environment stale."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "a.py").write_text("x = 1\n", "utf-8")
    env = PeerEnv("bentoml", (package,))
    before = env.fingerprint()
    assert env.fingerprint() == before
    (package / "a.py").write_text("x = 2\n", "utf-8")
    assert env.fingerprint() != before


def test_parity_says_same_model_only_within_the_export_tolerance() -> None:
    """The largest relative price difference is held against the tolerance given."""
    close = parity([100.0, 200.0], [100.0, 200.001], tolerance=1e-4)
    assert close["max_relative_diff"] == pytest.approx(5e-6)
    assert close["same_model"] is True
    assert parity([100.0, 200.0], [100.0, 201.0], tolerance=1e-4)["same_model"] is False


def _peer_run(mlserver: dict[str, Any] | None) -> dict[str, Any]:
    """Results of a run with ours and, optionally, MLServer: open-loop figures only."""
    step = {"offered_rps": 400.0, "achieved_rps": 401.0, "p95_ms": 9.0, "sustained": True}
    ours = {
        "open_loop_ladder": {"steps": [], "max_sustained_rps": 900.0},
        "open_loop_at_mlserver_rate": {**step, "p95_ms": 3.0},
    }
    servers: dict[str, Any] = {"ours": ours}
    if mlserver is not None:
        servers["mlserver"] = mlserver | {"open_loop_at_mlserver_rate": step}
    setup = {"mixed_rate_rps": 0, "open_loop_rate": 50}
    return {"servers": servers, "model_bench": {"benchmarks": []}, "setup": setup}


def test_peer_goals_read_ours_and_the_peer_and_say_when_absent() -> None:
    """Each peer goal divides ours' figure by the peer's; a peer not run reads "not measured"."""
    mlserver = {"open_loop_ladder": {"steps": [], "max_sustained_rps": 400.0}}
    found = {text: (got, met) for text, _, got, met in goal_rows(_peer_run(mlserver), load_goals())}
    assert found["Max sustained single-car RPS vs MLServer (open loop)"] == (
        "900 vs 400 = 2.25×",
        True,
    )
    p95 = found["p95 at MLServer's max sustained rate vs MLServer (open loop)"]
    assert p95 == ("3 vs 9 = 0.33×", True)
    assert found["Max sustained single-car RPS vs BentoML (open loop)"][1] is None
    absent = {text: met for text, _, _, met in goal_rows(_peer_run(None), load_goals())}
    assert absent["Max sustained single-car RPS vs MLServer (open loop)"] is None


def _needs(env: PeerEnv) -> None:
    if not env.is_current():
        pytest.skip(f"{env.root} absent or stale: `make bench` builds it")


@pytest.mark.slow
def test_mlserver_accepts_its_settings_files(tmp_path: Path) -> None:
    """MLServer's own settings classes parse the files as the run writes them."""
    _needs(MLSERVER)
    booster = tmp_path / "booster.txt"
    booster.write_text("tree\n", "utf-8")
    written = mlserver_repository(booster, tmp_path)
    model_file = tmp_path / written["model-settings.json"]["name"] / "model-settings.json"
    script = (
        "import sys; from mlserver.settings import ModelSettings, Settings; "
        "s = Settings.parse_file(sys.argv[1]); m = ModelSettings.parse_file(sys.argv[2]); "
        "print(s.parallel_workers, s.metrics_endpoint, m.max_batch_size, m.parameters.uri)"
    )
    command = [str(MLSERVER.bin / "python"), "-c", script]
    done = subprocess.run(
        [*command, str(tmp_path / "settings.json"), str(model_file)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.split() == ["0", "None", str(Settings().batch_max_rows), str(booster)]


@pytest.mark.slow
def test_bentoml_serves_the_bundle_as_ours_does(model_bundle: Path, tmp_path: Path) -> None:
    """The BentoML service on the test bundle answers the prices our model gives."""
    _needs(BENTOML)
    cars = [{**SAMPLE_CAR, "mileage": 10_000 * i} for i in range(5)]
    peer = bentoml_peer(model_bundle, pd.DataFrame(cars), tmp_path)
    server = RunningServer(peer.spec, peer.port, tmp_path / "bentoml.log")
    try:
        answers = []
        for body in peer.bodies:
            request = urllib.request.Request(
                server.url + peer.spec.predict_path, body, {"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=10) as response:
                answers.append(peer.price(response.read()))
    finally:
        server.stop()
    ours = load_bundle(model_bundle).run(msgspec.convert(cars, list[Car])).prices
    assert answers == pytest.approx(ours, rel=1e-6)
