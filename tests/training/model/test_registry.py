"""The jobs against a real MLflow SQLite store: the pipeline, the promotion gate, fetch-model.

One store per module; the tests run in order and build on each other.
"""

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from training.cli import main
from training.config import Params, load_params
from training.io import registry, tracking

pytestmark = [
    pytest.mark.slow,
    # MLflow 3.17's SQLAlchemy store uses the `noload` strategy SQLAlchemy 2.1 deprecates:
    # third-party, harmless for a local store, and not ours to fix.
    pytest.mark.filterwarnings(
        "ignore:The ``noload`` loader strategy is deprecated:sqlalchemy.exc.SADeprecationWarning"
    ),
    # Raised while mlflow.pyfunc imports its own chat-agent loaders (an `Any` hint of theirs).
    pytest.mark.filterwarnings("ignore:.*Any type hint is inferred as AnyType:UserWarning"),
]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, cars: Any) -> dict[str, Any]:
    """A temporary tree: params file, saved synthetic splits, an empty MLflow store."""
    from training.core.dataset import FRAME_COLUMNS, frame_hash
    from training.io import files
    from training.jobs.split import SUMMARY_FILE

    root = tmp_path_factory.mktemp("registry")
    raw: dict[str, Any] = {
        "data": {"reports_dir": str(root / "reports")},
        "split": {"splits_dir": str(root / "splits")},
        "train": {
            "lightgbm": {
                "learning_rate": 0.1,
                "num_leaves": 15,
                "min_child_samples": 5,
                "num_threads": 1,
            },
            "num_boost_round": 10,
            "early_stopping_rounds": 100,
            "use_tuned_params": True,
            "model_dir": str(root / "train"),
        },
        "tune": {
            "n_trials": 2,
            "num_boost_round": 20,
            "early_stopping_rounds": 10,
            "tune_dir": str(root / "tune"),
        },
        "export": {"model_dir": str(root / "model")},
        "registry": {
            "tracking_uri": f"sqlite:///{root / 'mlflow' / 'mlflow.db'}",
            "artifact_dir": str(root / "mlflow" / "artifacts"),
            "serving_dir": str(root / "served"),
        },
    }
    summary: dict[str, Any] = {"source": "synthetic", "splits": {}}
    for name, frame in cars.items():
        part = frame.loc[:, list(FRAME_COLUMNS)]
        files.write_parquet(part, root / "splits" / f"{name}.parquet")
        summary["splits"][name] = {"rows": len(part), "sha256": frame_hash(part)}
    files.write_json(summary, root / "splits" / SUMMARY_FILE)
    return {"root": root, "raw": raw}


def _params(store: dict[str, Any], rounds: int) -> tuple[str, Params]:
    raw = json.loads(json.dumps(store["raw"]))
    raw["train"]["num_boost_round"] = rounds
    path = store["root"] / f"params-{rounds}.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return str(path), load_params(path)


def _promotion(params: Params) -> dict[str, Any]:
    path = Path(params.data.reports_dir) / "promotion.json"
    result: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return result


def _served(params: Params) -> dict[str, Any]:
    """The manifest of the bundle `register` left in the serving dir."""
    path = Path(params.registry.serving_dir) / "manifest.json"
    result: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return result


def _champion(params: Params) -> str | None:
    client = tracking.client(params.registry)
    version = registry.version_by_alias(client, params.registry.model_name, registry.CHAMPION)
    return None if version is None else str(version.version)


def test_fetch_without_champion_fails_clearly(
    store: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An empty registry: fetch-model exits 1 naming the missing alias; nothing is written."""
    path, _ = _params(store, 10)
    assert main(["--params", path, "fetch-model", "--out", str(tmp_path / "out")]) == 1
    assert "no version with alias 'champion'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_pipeline_reaches_a_champion(store: dict[str, Any]) -> None:
    """Tune → train → evaluate → export → register through the CLI makes version 1 champion."""
    path, params = _params(store, 10)
    for command in ("tune", "train", "evaluate", "export", "register"):
        assert main(["--params", path, command]) == 0, command
    assert _promotion(params)["promote"] is True
    assert _promotion(params)["reason"] == "no champion yet"
    assert _champion(params) == "1"
    assert _served(params)["model_version"] == "1"
    best = json.loads((store["root"] / "tune" / "best_params.json").read_text(encoding="utf-8"))
    assert best["trials"] == 2
    client = tracking.client(params.registry)
    run_id = client.get_model_version(params.registry.model_name, "1").run_id
    run = client.get_run(run_id)
    assert "test_mape" in run.data.metrics
    assert run.data.tags["promotion"] == "promoted"
    artifacts = {a.path for a in client.list_artifacts(run_id, "bundle")}
    assert artifacts == {"bundle/model.onnx", "bundle/manifest.json"}


def test_gate_refuses_a_worse_challenger(store: dict[str, Any]) -> None:
    """A 2-round model becomes challenger but not champion; the refusal is recorded."""
    path, params = _params(store, 2)
    for command in ("train", "export", "register"):
        assert main(["--params", path, command]) == 0, command
    decision = _promotion(params)
    assert decision["promote"] is False
    assert decision["challenger_mape"] > decision["champion_mape"]
    assert _champion(params) == "1"
    client = tracking.client(params.registry)
    challenger = client.get_model_version_by_alias(params.registry.model_name, "challenger")
    assert str(challenger.version) == "2"
    assert client.get_run(challenger.run_id).data.tags["promotion"] == "refused"
    # The refused challenger is exported but never served: the serving dir keeps the champion.
    exported = json.loads((Path(params.export.model_dir) / "manifest.json").read_text("utf-8"))
    assert _served(params)["model_version"] == "1"
    assert _served(params)["sha256"] != exported["sha256"]


def test_gate_accepts_a_better_challenger(store: dict[str, Any]) -> None:
    """A 60-round model beats the 10-round champion and takes the alias."""
    path, params = _params(store, 60)
    for command in ("train", "export", "register"):
        assert main(["--params", path, command]) == 0, command
    decision = _promotion(params)
    assert decision["promote"] is True
    assert decision["challenger_mape"] < decision["champion_mape"]
    assert _champion(params) == "3"
    assert _served(params)["model_version"] == "3"


def test_fetch_model_round_trips_the_champion(store: dict[str, Any], tmp_path: Path) -> None:
    """fetch-model writes the champion's bundle; its sha256 matches model.onnx."""
    path, params = _params(store, 60)
    out = tmp_path / "served"
    assert main(["--params", path, "fetch-model", "--alias", "champion", "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["sha256"] == hashlib.sha256((out / "model.onnx").read_bytes()).hexdigest()
    assert manifest["model_version"] == "3"
    exported = json.loads((Path(params.export.model_dir) / "manifest.json").read_text("utf-8"))
    assert manifest["sha256"] == exported["sha256"]
