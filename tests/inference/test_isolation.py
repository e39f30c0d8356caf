import json
import subprocess
import sys
from pathlib import Path
from typing import Any

HEAVY = ("pandas", "sklearn", "lightgbm", "mlflow", "feast", "onnx", "polars", "pyarrow")

SCRIPT = """
import json, sys
from litestar.testing import TestClient
from inference.app import create_app
from inference.settings import Settings

app = create_app(Settings(model_dir=sys.argv[1], reload_poll_s=0.0))
with TestClient(app) as client:
    response = client.post("/predict", json=json.loads(sys.argv[2]))
    assert response.status_code == 200, response.text
print(json.dumps(sorted(name for name in sys.modules)))
"""


def test_serving_imports_no_training_stack(model_bundle: Path, car_payload: dict[str, Any]) -> None:
    """Importing inference and serving a prediction loads none of the training libraries."""
    car = {k: v for k, v in car_payload.items() if k != "engine_displacement"}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(model_bundle), json.dumps(car)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    modules = json.loads(result.stdout.strip().splitlines()[-1])
    top_level = {name.split(".")[0] for name in modules}
    assert "onnxruntime" in top_level  # the check sees real imports
    assert not top_level & set(HEAVY)
