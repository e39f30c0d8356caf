"""The jobs against a real MLflow SQLite store: pipeline, gate, fetch-model, the MLflow service.

One store per module; the tests run in order and build on each other.
"""

import copy
import hashlib
import json
import os
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import msgspec
import pytest

from shared_schema.bundle import read_verified
from shared_schema.serving_folder import CHALLENGER, CURRENT, PREVIOUS, read_pointer, resolve
from training.cli import main
from training.config import Params, load_params
from training.core.live_evidence import ShadowComparison
from training.io import onnx_scoring, registry, splits
from training.io.mlflow_service import MODEL_SHA_TAG, PIPELINE_TAG, TELEMETRY_OFF, MlflowService

from ..conftest import merged, relocated, write_labels, write_params
from .test_staging import pointer_bytes


@pytest.fixture(scope="module")
def store(
    tmp_path_factory: pytest.TempPathFactory, cars: Any, fast_training: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """A temporary tree: params with outputs under it, saved synthetic splits, no MLflow yet."""
    root = tmp_path_factory.mktemp("registry")
    raw = merged(
        relocated(root, **fast_training),
        train={"num_boost_round": 10, "early_stopping_rounds": 100, "use_tuned_params": True},
    )
    splits.write(Path(raw["paths"]["splits"]), cars, "synthetic")
    write_labels(Path(raw["paths"]["labels"]), cars)
    return {"root": root, "raw": raw}


def _params(store: dict[str, Any], rounds: int) -> tuple[str, Params]:
    raw = merged(copy.deepcopy(store["raw"]), train={"num_boost_round": rounds})
    path = write_params(raw, store["root"] / f"params-{rounds}.yaml")
    return str(path), load_params(path)


def _run(path: str, *commands: str) -> None:
    """Run pipeline steps through the CLI; `publish` is the stage's fetch-model command."""
    params = load_params(path)
    for command in commands:
        argv = (
            ["fetch-model", "--alias", "champion", "--out", str(params.paths.serving_bundle)]
            if command == "publish"
            else [command]
        )
        assert main(["--params", path, *argv]) == 0, command


def _promotion(params: Params) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(params.paths.promotion.read_text(encoding="utf-8"))
    return result


def _served(params: Params) -> dict[str, Any]:
    """The manifest of the bundle `publish` left in the serving folder (`current` names it)."""
    path = resolve(params.paths.serving_bundle).directory / "manifest.json"
    result: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return result


def _champion(params: Params) -> str | None:
    service = MlflowService.from_params(params.registry)
    version = registry.version_by_alias(service, params.registry.model_name, registry.CHAMPION)
    return None if version is None else str(version.version)


@pytest.mark.slow
def test_fetch_without_champion_fails_clearly(
    store: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An empty registry: fetch-model exits 1 naming the missing alias; nothing is written."""
    path, _ = _params(store, 10)
    assert main(["--params", path, "fetch-model", "--out", str(tmp_path / "out")]) == 1
    assert "no version with alias 'champion'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_pipeline_reaches_a_champion(store: dict[str, Any]) -> None:
    """Tune → … → register → promote → publish through the CLI serves version 1 as champion."""
    path, params = _params(store, 10)
    _run(path, "tune", "train", "evaluate", "export", "register")
    registration = json.loads(params.paths.registration.read_text(encoding="utf-8"))
    assert registration["version"] == "1"
    assert _champion(params) is None  # register only registers
    _run(path, "promote", "publish")
    assert _promotion(params)["promote"] is True
    assert _promotion(params)["reason"] == "no champion yet"
    assert _champion(params) == "1"
    assert _served(params)["model_version"] == "1"
    best = json.loads(params.paths.tuned_params.read_text(encoding="utf-8"))
    assert best["trials"] == 2
    client = MlflowService.from_params(params.registry).client
    run_id = client.get_model_version(params.registry.model_name, "1").run_id
    run = client.get_run(run_id)
    assert "test_mape" in run.data.metrics
    assert run.data.tags["promotion"] == "promoted"
    tags = client.get_model_version(params.registry.model_name, "1").tags
    assert set(tags) == {
        "sha256",
        "test_mape",
        "training_data_hash",
        "schema_version",
        "promotion",
        "promotion_reason",
    }
    assert tags["promotion_reason"] == "no champion yet"
    artifacts = {a.path for a in client.list_artifacts(run_id, "bundle")}
    assert artifacts == {"bundle/model.onnx", "bundle/manifest.json"}


def _contents(*paths: Path) -> dict[str, bytes]:
    """Every file under `paths` (files or folders) and its bytes."""
    found = {}
    for path in paths:
        for file in [path] if path.is_file() else sorted(path.rglob("*")):
            if file.is_file():
                found[str(file)] = file.read_bytes()
    return found


@pytest.mark.slow
def test_same_inputs_give_byte_identical_outputs(store: dict[str, Any]) -> None:
    """Tune, train, evaluate and export again: every output the same bytes, runs found by tag."""
    path, params = _params(store, 10)
    paths = params.paths
    outputs = (
        paths.tuned_params,
        paths.trained_pipeline,
        paths.train_report,
        paths.test_metrics,
        paths.error_by_brand,
        paths.error_by_decile,
        paths.plots,
        paths.exported_bundle,
    )
    before = _contents(*outputs)
    assert len(before) == 13
    _run(path, "tune", "train", "evaluate", "export")
    assert _contents(*outputs) == before
    # No run id in the files: evaluate and export logged into the new run of the same model.
    fingerprint = json.loads(paths.train_report.read_text("utf-8"))["pipeline_sha256"]
    client = MlflowService.from_params(params.registry).client
    experiment = client.get_experiment_by_name(params.registry.experiment)
    runs = client.search_runs(
        [experiment.experiment_id],
        f"tags.{PIPELINE_TAG} = '{fingerprint}'",
        order_by=["attributes.start_time DESC"],
    )
    assert len(runs) == 2
    assert "test_mape" in runs[0].data.metrics
    assert runs[0].data.tags[MODEL_SHA_TAG] == _served(params)["sha256"]


@pytest.mark.slow
def test_gate_refuses_a_worse_challenger(store: dict[str, Any]) -> None:
    """A 2-round model becomes challenger but not champion; the refusal is recorded."""
    path, params = _params(store, 2)
    _run(path, "train", "export", "register", "promote", "publish")
    decision = _promotion(params)
    assert decision["promote"] is False
    assert decision["challenger_mape"] > decision["champion_mape"]
    assert _champion(params) == "1"
    client = MlflowService.from_params(params.registry).client
    challenger = client.get_model_version_by_alias(params.registry.model_name, "challenger")
    assert str(challenger.version) == "2"
    assert client.get_run(challenger.run_id).data.tags["promotion"] == "refused"
    # The refused challenger is exported but never served: the serving dir keeps the champion.
    exported = json.loads((params.paths.exported_bundle / "manifest.json").read_text("utf-8"))
    assert _served(params)["model_version"] == "1"
    assert _served(params)["sha256"] != exported["sha256"]


@pytest.mark.slow
def test_stage_serves_the_refused_challenger_beside_the_champion(store: dict[str, Any]) -> None:
    """`car-train stage` names registry challenger 2 in `challenger`; `current` stays on 1."""
    path, params = _params(store, 2)
    folder = params.paths.serving_bundle
    current = (folder / CURRENT).read_bytes()
    assert main(["--params", path, "stage", "--out", str(folder)]) == 0
    staged = read_pointer(folder, CHALLENGER)
    assert staged is not None
    assert staged.model_version == "2"
    assert read_verified(folder / staged.bundle).manifest.registry_alias == "challenger"
    assert (folder / CURRENT).read_bytes() == current


def _live_run(params: Params, name: str, champion: str, challenger: str, gap: float) -> None:
    """A drift run's summary whose shadow rows put the challenger `gap` MAPE from the champion."""
    shadow = ShadowComparison(
        champion_version=champion,
        challenger_version=challenger,
        labelled_rows=params.rollout.min_labelled_rows,
        champion_mape=0.2,
        challenger_mape=0.2 + gap,
        difference=gap,
        ci_low=gap - 0.01,
        ci_high=gap + 0.01,
        confidence=0.95,
        resamples=1000,
    )
    out = params.paths.drift / name
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_bytes(msgspec.json.encode({"shadow": shadow}))


@pytest.mark.slow
def test_live_evidence_of_a_worse_challenger_refuses_it(store: dict[str, Any]) -> None:
    """Inconclusive rows keep staged challenger 2; worse with confidence: refused, withdrawn."""
    path, params = _params(store, 2)
    folder = params.paths.serving_bundle
    _live_run(params, "even", "1", "2", gap=0.0)
    assert main(["--params", path, "promote-live", "--run", "even"]) == 0
    staged = read_pointer(folder, CHALLENGER)
    assert staged is not None  # still gathering rows
    assert staged.model_version == "2"
    _live_run(params, "worse", "1", "2", gap=0.2)
    current = (folder / CURRENT).read_bytes()
    assert main(["--params", path, "promote-live", "--run", "worse"]) == 0
    assert read_pointer(folder, CHALLENGER) is None  # no more shadow runs or canary answers
    assert _champion(params) == "1"
    client = MlflowService.from_params(params.registry).client
    tags = client.get_model_version(params.registry.model_name, "2").tags
    assert tags["promotion"] == "refused"
    assert "not better on live traffic with confidence" in tags["promotion_reason"]
    assert (params.paths.serving_bundle / CURRENT).read_bytes() == current


@pytest.mark.slow
def test_gate_accepts_a_better_challenger(store: dict[str, Any]) -> None:
    """A 60-round model beats the 10-round champion and takes the alias."""
    path, params = _params(store, 60)
    _run(path, "train", "export", "register", "promote", "publish")
    decision = _promotion(params)
    assert decision["promote"] is True
    assert decision["challenger_mape"] < decision["champion_mape"]
    assert _champion(params) == "3"
    assert _served(params)["model_version"] == "3"


@pytest.mark.slow
def test_fetch_model_round_trips_the_champion(store: dict[str, Any], tmp_path: Path) -> None:
    """fetch-model publishes the champion's bundle; its sha256 matches model.onnx."""
    path, params = _params(store, 60)
    out = tmp_path / "served"
    assert main(["--params", path, "fetch-model", "--alias", "champion", "--out", str(out)]) == 0
    served = resolve(out).directory
    manifest = json.loads((served / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["sha256"] == hashlib.sha256((served / "model.onnx").read_bytes()).hexdigest()
    assert manifest["model_version"] == "3"
    exported = json.loads((params.paths.exported_bundle / "manifest.json").read_text("utf-8"))
    assert manifest["sha256"] == exported["sha256"]


class _WatchedEnviron(MutableMapping[str, str]):
    """`os.environ` that remembers every name written or removed."""

    def __init__(self, real: MutableMapping[str, str]) -> None:
        self.real, self.written = real, set[str]()

    def __getitem__(self, name: str) -> str:
        return self.real[name]

    def __setitem__(self, name: str, value: str) -> None:
        self.written.add(name)
        self.real[name] = value

    def __delitem__(self, name: str) -> None:
        self.written.add(name)
        del self.real[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.real)

    def __len__(self) -> int:
        return len(self.real)

    def copy(self) -> dict[str, str]:
        return dict(self.real)


@pytest.mark.slow
def test_jobs_never_write_the_environment(
    store: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Train → … → publish through the CLI writes nothing into os.environ, MLflow's URIs included.

    MLflow's URIs left in the environment once sent a second project to the first one's store;
    MLflow's own global tracking URI is left as it was too.
    """
    import mlflow

    path, params = _params(store, 10)
    for name, value in TELEMETRY_OFF.items():  # `car-train`'s process defaults, already set
        monkeypatch.setenv(name, value)
    # MLflow's default store is relative to the working directory: nothing may land there.
    monkeypatch.chdir(tmp_path)
    before, tracking_uri = dict(os.environ), mlflow.get_tracking_uri()
    watched = _WatchedEnviron(os.environ)
    monkeypatch.setattr(os, "environ", watched)
    _run(path, "train", "evaluate", "export", "register", "promote", "publish")
    # MLflow itself sets and removes one flag while it checks a logged model's input example.
    assert watched.written <= {"_MLFLOW_IS_IN_SERVING_ENVIRONMENT"}
    assert dict(watched.real) == before
    assert mlflow.get_tracking_uri() == tracking_uri
    assert list(tmp_path.iterdir()) == []
    assert _promotion(params)["challenger_version"] == "4"


# Slow with the scenario above: it needs the exported bundle and champion of its store.
@pytest.mark.slow
def test_the_cli_sets_only_the_telemetry_defaults(
    store: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`car-train` adds MLflow's telemetry opt-out where unset, and nothing else."""
    path, _ = _params(store, 10)
    for name in TELEMETRY_OFF:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DO_NOT_TRACK", "false")  # an operator's choice stays
    before = dict(os.environ)
    _run(path, "publish")
    assert dict(os.environ) == {**TELEMETRY_OFF, **before}


def test_an_operators_tracking_uri_wins_and_stays_as_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MLFLOW_TRACKING_URI, when set, is the service's store; the environment keeps it as is."""
    operator = f"sqlite:///{tmp_path / 'operator.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", operator)
    params = load_params(write_params(relocated(tmp_path), tmp_path / "params.yaml"))
    service = MlflowService.from_params(params.registry)
    assert service.tracking_uri == service.registry_uri == operator
    assert service.client.tracking_uri == operator
    assert os.environ["MLFLOW_TRACKING_URI"] == operator


# Slow with the scenario above: it needs the exported bundle and champion of its store.
@pytest.mark.slow
def test_two_services_in_one_process_keep_to_their_own_stores(
    store: dict[str, Any], tmp_path: Path
) -> None:
    """Interleaved runs, logged bundles and versions of two stores land each in its own."""
    import mlflow

    _, params = _params(store, 10)
    inputs = read_verified(params.paths.exported_bundle).manifest.inputs
    example = onnx_scoring.frame_feeds(splits.read(params.paths.splits, "test").head(3), inputs)
    services = {}
    for project in ("first", "second"):
        raw = relocated(tmp_path / project)
        services[project] = MlflowService.from_params(
            load_params(write_params(raw, tmp_path / project / "params.yaml")).registry
        )
    first, second = services["first"], services["second"]
    before = (mlflow.get_tracking_uri(), mlflow.get_registry_uri(), dict(os.environ))
    with first.run("one") as one, second.run("two") as two:
        registry.log_bundle(one, params.paths.exported_bundle, example)
        registry.log_bundle(two, params.paths.exported_bundle, example)
        one.set_tags({"project": "first"})
        two.set_tags({"project": "second"})
    assert (mlflow.get_tracking_uri(), mlflow.get_registry_uri(), dict(os.environ)) == before
    for project, service, run in (("first", first, one), ("second", second, two)):
        found = service.client.get_run(run.run_id)
        assert found.info.status == "FINISHED"
        assert found.data.tags["project"] == project
        assert found.info.artifact_uri.startswith((tmp_path / project).as_uri())
        other = second if service is first else first
        assert other.client.search_runs([other.experiment_id], f"tags.project = '{project}'") == []
        version = registry.register(service, "car-price", run.run_id, {"project": project})
        assert version == "1"
        assert registry.require_version(service, "car-price", "1").tags == {"project": project}


@pytest.mark.slow
def test_rollback_moves_pointer_and_alias_back_and_a_second_one_is_refused(
    store: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """Rollback serves 1 again, alias too, 3 tagged; a second one: exit 1, 3 never served."""
    path, params = _params(store, 60)
    folder = params.paths.serving_bundle
    assert (
        main(["--params", path, "rollback", "--reason", "p95 doubled", "--out", str(folder)]) == 0
    )
    assert _served(params)["model_version"] == "1"
    assert _champion(params) == "1"
    client = MlflowService.from_params(params.registry).client
    tags = client.get_model_version(params.registry.model_name, "3").tags
    assert tags["rollback_reason"] == "p95 doubled"  # the version rolled back, not the target
    assert read_pointer(folder, PREVIOUS) is None  # 3 is served again only if published anew
    current = (folder / CURRENT).read_bytes()
    assert main(["--params", path, "rollback", "--reason", "again", "--out", str(folder)]) == 1
    assert "no previous pointer: nothing to roll back to" in capsys.readouterr().err
    assert (folder / CURRENT).read_bytes() == current
    assert _champion(params) == "1"


def _promote_live(path: str, run: str, folder: Path) -> int:
    return main(["--params", path, "promote-live", "--run", run, "--out", str(folder)])


@pytest.mark.slow
def test_promote_live_refuses_a_run_not_about_the_trial_in_force(
    store: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """After the rollback to 1: runs on champion 3, on an unstaged 2, or on rolled-back 3 fail."""
    path, params = _params(store, 60)
    folder = params.paths.serving_bundle
    assert main(["--params", path, "stage", "--alias", "challenger", "--out", str(folder)]) == 0
    client = MlflowService.from_params(params.registry).client
    name = params.registry.model_name
    before = pointer_bytes(folder)
    capsys.readouterr()
    _live_run(params, "stale-champion", "3", "4", gap=-0.1)
    assert _promote_live(path, "stale-champion", folder) == 1
    assert "champion version 3, but the `champion` alias names version 1" in capsys.readouterr().err
    _live_run(params, "stale-challenger", "1", "2", gap=-0.1)
    assert _promote_live(path, "stale-challenger", folder) == 1
    assert "challenger is version 2, but" in (err := capsys.readouterr().err)
    assert "pointer names version 4 now" in err
    client.set_registered_model_alias(name, "challenger", "3")
    assert main(["--params", path, "stage", "--alias", "challenger", "--out", str(folder)]) == 0
    _live_run(params, "rolled-back", "1", "3", gap=-0.1)
    assert _promote_live(path, "rolled-back", folder) == 1
    assert "version 3 is tagged rollback_reason: 'p95 doubled'" in capsys.readouterr().err
    client.set_model_version_tag(name, "4", "withdrawn_reason", "error ratio")
    client.set_registered_model_alias(name, "challenger", "4")
    assert main(["--params", path, "stage", "--alias", "challenger", "--out", str(folder)]) == 0
    _live_run(params, "withdrawn", "1", "4", gap=-0.1)
    assert _promote_live(path, "withdrawn", folder) == 1
    assert "version 4 is tagged withdrawn_reason: 'error ratio'" in capsys.readouterr().err
    client.delete_model_version_tag(name, "4", "withdrawn_reason")
    assert _champion(params) == "1"
    assert pointer_bytes(folder) == before


@pytest.mark.slow
def test_live_evidence_of_a_better_challenger_promotes_and_publishes_it(
    store: dict[str, Any],
) -> None:
    """After the rollback: shadow rows where staged 4 beats 1 promote 4, serve it, unstage it."""
    path, params = _params(store, 60)
    folder = params.paths.serving_bundle
    _live_run(params, "better", "1", "4", gap=-0.1)
    assert _promote_live(path, "better", folder) == 0
    assert _champion(params) == "4"
    assert _served(params)["model_version"] == "4"
    assert read_pointer(folder, CHALLENGER) is None


@pytest.mark.slow
def test_without_its_trial_check_promote_live_brings_back_a_rolled_back_version(
    store: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Broken copy: no `require_on_trial`, and the stale run re-promotes rolled-back 3."""
    from training.jobs import promote_live

    path, params = _params(store, 60)
    monkeypatch.setattr(promote_live, "require_on_trial", lambda *_args: None)
    assert _promote_live(path, "rolled-back", params.paths.serving_bundle) == 0
    assert _champion(params) == "3"
