"""The training image runs `car-train` stages on a synthetic project, as a task pod would.

As the Dockerfile documents it: the pipeline's data/ is a volume at /app/data, the raw files a
read-only volume at /shared/data (params.yaml's data.raw_dir from /app), the image's own
params.yaml, dvc.yaml and Feast repo; uid 10001 on a read-only root with a /tmp.
"""

import json
from pathlib import Path

import pytest

from ..training.raw_markets import synthetic_2020, synthetic_2022, write_raw
from .conftest import IMAGE_BUILD_S, Images, host_dir_for, podman

# The session's image builds run in the setup of whichever test comes first, and pytest-timeout
# counts setup: a cold CI machine builds all three (about 15 min on 2 busy cores), so these
# tests get the build's own limit (images.sh: 1,800 s) and room to run, not the suite's 900 s.
pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(IMAGE_BUILD_S + 600),
    pytest.mark.needs("podman", "mmdebstrap"),
]

#: The image's `app` user (training/Dockerfile).
APP_UID = 10001
#: The first stages of dvc.yaml, each reading what the one before wrote.
STAGES = ("ingest", "features", "split")


@pytest.mark.slow
def test_training_image_runs_the_first_stages_on_synthetic_raw_data(
    images: Images, tmp_path: Path
) -> None:
    """ingest, features and split run in the image and write their outputs to the data volume."""
    raw = tmp_path / "raw"
    write_raw(raw, synthetic_2020(40), synthetic_2022(20))
    raw.chmod(0o755)
    for path in raw.iterdir():
        path.chmod(0o644)
    data = host_dir_for(APP_UID, tmp_path / "data")
    for stage in STAGES:
        podman(
            "run", "--rm",
            "--user", f"{APP_UID}:{APP_UID}", "--read-only", "--tmpfs", "/tmp",
            "--volume", f"{data}:/app/data", "--volume", f"{raw}:/shared/data:ro",
            images.training, stage,
            timeout=600,
        )  # fmt: skip
    report = json.loads((data / "reports" / "ingest.json").read_text())
    written = sorted(str(p.relative_to(data)) for p in data.rglob("*") if p.is_file())
    print(f"\ntraining image: {' '.join(STAGES)} wrote {written}")
    assert report["sources"]["autoru_2020_moscow"]["accepted"] == 40, report
    assert {"splits/train.parquet", "splits/val.parquet", "splits/test.parquet"} <= set(written)
