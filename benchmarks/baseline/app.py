"""The baseline: a seed-style FastAPI service, to measure our server against.

What a typical first version of this service looks like, and what the seed project ran:
pydantic request models, a pandas DataFrame built per request, the training-time
sklearn/LightGBM pipeline (unpickled with joblib) called on it, uvicorn serving it. Same
paths, request and response shapes as `inference`. It lives only in `benchmarks/`.
"""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

import pandas as pd
from fastapi import FastAPI, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

Code = Annotated[str, Field(min_length=1, max_length=60, pattern=r"^[A-Z0-9][A-Z0-9_\-]*$")]


class CarIn(BaseModel):
    """One car, as the seed project's pydantic model described it."""

    model_config = ConfigDict(extra="forbid")

    brand: Code
    model_name: Code
    body_type: Literal[
        "внедорожник",
        "седан",
        "хэтчбек",
        "минивэн",
        "универсал",
        "лифтбек",
        "купе",
        "пикап",
        "кабриолет",
        "фургон",
        "лимузин",
    ]
    color: Annotated[str, Field(min_length=1, max_length=30)]
    fuel_type: Literal["бензин", "дизель", "гибрид", "электро", "газ"]
    model_year: Annotated[int, Field(ge=1900, le=2035)]
    production_year: Annotated[int, Field(ge=1900, le=2035)]
    n_doors: Annotated[int, Field(ge=1, le=6)]
    vehicle_transmission: Literal["автомат", "механика", "робот", "вариатор"]
    engine_power: Annotated[float, Field(ge=5.0, le=2000.0)]
    engine_displacement: Annotated[float, Field(ge=0.1, le=10.0)] | None = None
    mileage: Annotated[int, Field(ge=0, le=2_000_000)]
    drive_type: Literal["передний", "полный", "задний"]
    n_owners: Literal["1", "2", "3+", "unknown"]
    is_original_techpass: Annotated[int, Field(ge=0, le=1)]
    is_lefthand_drive: Annotated[int, Field(ge=0, le=1)]


class BatchIn(BaseModel):
    """Several cars."""

    model_config = ConfigDict(extra="forbid")

    cars: Annotated[list[CarIn], Field(min_length=1, max_length=1000)]


class PredictOut(BaseModel):
    """The price of one car."""

    price_rub: float
    model_version: str


class BatchOut(BaseModel):
    """Prices in request order."""

    prices_rub: list[float]
    model_version: str


def load_pipeline(pipeline_file: str | None, pipeline_dir: str | None) -> Any:
    """The training-time pipeline with a `.predict(DataFrame)` in RUB.

    Args:
        pipeline_file: A joblib pickle with `.predict` (the stand-in).
        pipeline_dir: A directory written by the training package (`car-train train`).
    """
    if pipeline_dir:
        from benchmarks.champion import _PricePipelineAdapter
        from training.io import pipeline_files

        pipeline, _ = pipeline_files.load(Path(pipeline_dir))
        return _PricePipelineAdapter(pipeline)
    import joblib

    return joblib.load(pipeline_file)


def create_app(
    pipeline_file: str | None, model_version: str, pipeline_dir: str | None = None
) -> FastAPI:
    """The baseline app; the pipeline is loaded when the server starts."""
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        state["pipeline"] = load_pipeline(pipeline_file, pipeline_dir)
        yield

    app = FastAPI(title="Car price API (baseline)", lifespan=lifespan)

    # Plain `def` endpoints: FastAPI runs them in its thread pool, as the seed project did.
    @app.post("/predict", response_model=PredictOut)
    def predict(car: CarIn) -> PredictOut:
        frame = pd.DataFrame([car.model_dump()])
        price = float(state["pipeline"].predict(frame)[0])
        return PredictOut(price_rub=price, model_version=model_version)

    @app.post("/predict/batch", response_model=BatchOut)
    def predict_batch(batch: BatchIn) -> BatchOut:
        frame = pd.DataFrame([car.model_dump() for car in batch.cars])
        prices = state["pipeline"].predict(frame)
        return BatchOut(prices_rub=[float(price) for price in prices], model_version=model_version)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready")
    def ready(request: Request) -> dict[str, Any]:
        if "pipeline" not in state:
            raise HTTPException(status_code=503, detail="model not loaded yet")
        return {"ready": True, "model_version": model_version}

    return app


def create_app_from_env() -> FastAPI:
    """Uvicorn's factory target: `BASELINE_PIPELINE[_DIR]` and `BASELINE_MODEL_VERSION`."""
    from benchmarks.standin import quiet_sklearn

    quiet_sklearn()
    return create_app(
        os.environ.get("BASELINE_PIPELINE"),
        os.environ.get("BASELINE_MODEL_VERSION", "unknown"),
        os.environ.get("BASELINE_PIPELINE_DIR"),
    )
