"""The serving folder's default place: one constant, and the files that cannot import it.

`DEFAULT_SERVING_FOLDER` is the home; the server's `MODEL_DIR` default imports it. params.yaml
(where the pipeline publishes), docker-compose.yml (what it bind-mounts into the server) and the
image (where it reads the mount) state it again, so they are checked against it here;
k8s/base/server.env's `MODEL_DIR` is checked against it by tests/k8s (`volume_problems`).
"""

import re
import shutil
from pathlib import Path
from typing import Final

import yaml

from shared_schema.serving_folder import DEFAULT_SERVING_FOLDER

ROOT: Final = Path(__file__).resolve().parents[2]
FILES: Final = ("params.yaml", "docker-compose.yml", "inference/Dockerfile")
NAME: Final = "shared_schema.serving_folder.DEFAULT_SERVING_FOLDER"


def _dockerfile_model_dir(text: str) -> tuple[str | None, str | None, tuple[str, str] | None]:
    """The image's `ENV MODEL_DIR`, its `VOLUME`, and its usage line's `-v` source and target."""
    env = re.search(r"^\s+MODEL_DIR=(\S+)", text, re.MULTILINE)
    volume = re.search(r'^VOLUME \["([^"]+)"\]', text, re.MULTILINE)
    usage = re.search(r'-v "\$PWD/([^:"]+):([^:"]+):ro"', text)
    return (
        env.group(1) if env else None,
        volume.group(1) if volume else None,
        (usage.group(1), usage.group(2)) if usage else None,
    )


def default_problems(root: Path) -> list[str]:
    """Where the non-Python files of `root` state another serving folder than the constant."""
    problems = []
    params = yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8"))
    published = params["paths"]["serving_bundle"]
    if published != DEFAULT_SERVING_FOLDER:
        problems.append(
            f"params.yaml: paths.serving_bundle is {published!r}, {NAME} is "
            f"{DEFAULT_SERVING_FOLDER!r}"
        )
    dockerfile = (root / "inference" / "Dockerfile").read_text(encoding="utf-8")
    model_dir, volume, usage = _dockerfile_model_dir(dockerfile)
    if model_dir is None or volume != model_dir:
        problems.append(f"inference/Dockerfile: VOLUME {volume!r} is not MODEL_DIR {model_dir!r}")
    if usage != (DEFAULT_SERVING_FOLDER, model_dir):
        problems.append(
            f"inference/Dockerfile: the usage line mounts {usage}, not "
            f"({DEFAULT_SERVING_FOLDER!r}, {model_dir!r})"
        )
    compose = yaml.safe_load((root / "docker-compose.yml").read_text(encoding="utf-8"))
    mount = f"./{DEFAULT_SERVING_FOLDER}:{model_dir}:ro"
    volumes = compose["services"]["server"].get("volumes", [])
    if mount not in volumes:
        problems.append(
            f"docker-compose.yml: the server mounts {volumes}, not {mount!r} ({NAME} at the "
            "image's MODEL_DIR)"
        )
    return problems


def _copy(tmp_path: Path) -> Path:
    for name in FILES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / name, tmp_path / name)
    return tmp_path


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_every_file_states_the_one_default() -> None:
    """params.yaml, docker-compose.yml and the image agree with DEFAULT_SERVING_FOLDER."""
    assert default_problems(ROOT) == []


def test_another_folder_in_params_or_compose_is_named(tmp_path: Path) -> None:
    """A serving folder other than the constant is reported with its file and both values."""
    root = _copy(tmp_path)
    _edit(root / "params.yaml", "serving_bundle: data/model", "serving_bundle: data/served")
    _edit(root / "docker-compose.yml", "./data/model:/models:ro", "./data/served:/models:ro")
    assert default_problems(root) == [
        f"params.yaml: paths.serving_bundle is 'data/served', {NAME} is 'data/model'",
        "docker-compose.yml: the server mounts ['./data/served:/models:ro'], not "
        f"'./data/model:/models:ro' ({NAME} at the image's MODEL_DIR)",
    ]


def test_an_image_reading_elsewhere_is_named(tmp_path: Path) -> None:
    """An image whose MODEL_DIR is not its volume, nor compose's mount target, is reported."""
    root = _copy(tmp_path)
    _edit(root / "inference" / "Dockerfile", "MODEL_DIR=/models", "MODEL_DIR=/srv/models")
    assert default_problems(root) == [
        "inference/Dockerfile: VOLUME '/models' is not MODEL_DIR '/srv/models'",
        "inference/Dockerfile: the usage line mounts ('data/model', '/models'), not "
        "('data/model', '/srv/models')",
        "docker-compose.yml: the server mounts ['./data/model:/models:ro'], not "
        f"'./data/model:/srv/models:ro' ({NAME} at the image's MODEL_DIR)",
    ]
