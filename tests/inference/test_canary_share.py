"""The canary share file: the server answers its share with the challenger it names, re-read."""

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from inference.rollout_metrics import MODEL_VERSION_HEADER
from shared_schema.serving_folder import CANARY_SHARE_FILE, CanaryShare, encode_canary_share

from .conftest import MakeClient
from .test_rollout import wait_for


def write_share(folder: Path, share: float, version: str = "2") -> None:
    """The canary share file as `car-train watch` writes it (temporary file, rename)."""
    canary = CanaryShare(challenger_version=version, share=share, step=0, since=datetime.now(UTC))
    tmp = folder / ".canary_share.tmp"
    tmp.write_bytes(encode_canary_share(canary))
    tmp.replace(folder / CANARY_SHARE_FILE)


def test_the_file_share_wins_over_the_setting_and_is_re_read(
    make_client: MakeClient, rollout_folder: Path, car_payload: dict[str, Any]
) -> None:
    """CANARY_SHARE=0 with a file at 1: the challenger answers; the file at 0 and it stops."""

    def version() -> str:
        return str(client.post("/predict", json=car_payload).headers[MODEL_VERSION_HEADER])

    write_share(rollout_folder, 1.0)
    with make_client(rollout_folder, canary_share=0.0, reload_poll_s=0.05) as client:
        assert version() == "2"
        write_share(rollout_folder, 0.0)
        wait_for(lambda: version() == "1", "the champion answering once the share file is 0")
        (rollout_folder / CANARY_SHARE_FILE).unlink()  # no file: CANARY_SHARE again
        assert {version() for _ in range(5)} == {"1"}


def test_a_file_for_another_challenger_is_ignored(
    make_client: MakeClient, rollout_folder: Path, car_payload: dict[str, Any]
) -> None:
    """A share written for version 9 while version 2 is staged: CANARY_SHARE (0) applies."""
    write_share(rollout_folder, 1.0, version="9")
    with make_client(rollout_folder, canary_share=0.0) as client:
        answers = [client.post("/predict", json=car_payload) for _ in range(5)]
    assert {answer.headers[MODEL_VERSION_HEADER] for answer in answers} == {"1"}
