"""Options and model of the in-process benchmarks: `model_bench.py` and `profile.py`.

Run with pytest-benchmark; `benchmarks.run` runs both in one session pinned to one core.
"""

from pathlib import Path

import pandas as pd
import pytest

from benchmarks.champion import Champion, held_out_rows, resolve

SIZES = "1,10,100,1000,10000"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("benchmarks (without --bundle: what `make train` leaves)")
    group.addoption("--bundle", type=Path, help="bundle directory")
    group.addoption("--pipeline", type=Path, help="its training pipeline (LightGBM booster)")
    group.addoption("--rows", type=Path, help="parquet of held-out cars")
    group.addoption("--sizes", default=SIZES, help=f"rows per model call ({SIZES})")
    group.addoption("--requests", type=int, default=4000, help="requests profiled")
    group.addoption(
        "--distinct-cars", type=int, default=1000, help="cars small batches take in turn"
    )
    group.addoption("--lleaves-cache", type=Path, default=Path("data/bench/lleaves"))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "rows" in metafunc.fixturenames:
        sizes = [int(size) for size in metafunc.config.getoption("sizes").split(",")]
        metafunc.parametrize("rows", sizes, ids=[f"{size}rows" for size in sizes])


@pytest.fixture(scope="session")
def model(pytestconfig: pytest.Config) -> tuple[Champion, pd.DataFrame]:
    """The champion the options name, and the held-out cars' raw fields."""
    option = pytestconfig.getoption
    champion, rows = resolve(option("bundle"), option("pipeline"), option("rows"))
    return champion, held_out_rows(rows)
