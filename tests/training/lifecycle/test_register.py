"""The lifecycle's one tag builder: a registry version's tags, for the pipeline and the retrain."""

from shared_schema import SCHEMA_VERSION
from shared_schema.bundle import Manifest, manifest_inputs
from training.io.registry import TRAINED_THROUGH_TAG
from training.lifecycle.register import version_tags


def test_one_tag_builder_for_pipeline_and_retrain_versions() -> None:
    """A version's tags: its bundle, MAPE named for the rows it was measured on, its lineage."""
    manifest = Manifest(
        sha256="ab" * 32,
        schema_version=SCHEMA_VERSION,
        model_name="car-price",
        model_version="dev",
        inputs=manifest_inputs(),
        metrics={"mape": 0.1234567},
        training_data_hash="data",
        parity_max_rel_diff=0.0,
    )
    common = {
        "sha256": "ab" * 32,
        "training_data_hash": "data",
        "schema_version": SCHEMA_VERSION,
    }
    assert version_tags(manifest, "test") == {**common, "test_mape": "0.123457"}
    assert version_tags(manifest, "holdout", "2022-04-01T00:00:00+00:00|new:7") == {
        **common,
        "holdout_mape": "0.123457",
        TRAINED_THROUGH_TAG: "2022-04-01T00:00:00+00:00|new:7",
    }
