"""The baseline our server is measured against: what the seed project ran.

pydantic request models, a pandas DataFrame per request, the training-time pipeline called on
it, plain `def` endpoints (FastAPI's thread pool) under uvicorn; our paths and shapes.
"""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

import pandas as pd
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from benchmarks.champion import load_pipeline

Code = Annotated[str, Field(min_length=1, max_length=60, pattern=r"^[A-Z0-9][A-Z0-9_\-]*$")]
Year = Annotated[int, Field(ge=1900, le=2035)]
Flag = Annotated[int, Field(ge=0, le=1)]


class CarIn(BaseModel):
    """One car, as the seed project's pydantic model described it."""

    model_config = ConfigDict(extra="forbid")

    brand: Code
    model_name: Code
    body_type: Literal[
        "внедорожник", "седан", "хэтчбек", "минивэн", "универсал", "лифтбек", "купе", "пикап",
        "кабриолет", "фургон", "лимузин",
    ]  # fmt: skip
    color: Annotated[str, Field(min_length=1, max_length=30)]
    fuel_type: Literal["бензин", "дизель", "гибрид", "электро", "газ"]
    model_year: Year
    production_year: Year
    n_doors: Annotated[int, Field(ge=1, le=6)]
    vehicle_transmission: Literal["автомат", "механика", "робот", "вариатор"]
    engine_power: Annotated[float, Field(ge=5.0, le=2000.0)]
    engine_displacement: Annotated[float, Field(ge=0.1, le=10.0)] | None = None
    mileage: Annotated[int, Field(ge=0, le=2_000_000)]
    drive_type: Literal["передний", "полный", "задний"]
    n_owners: Literal["1", "2", "3+", "unknown"]
    is_original_techpass: Flag
    is_lefthand_drive: Flag


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cars: Annotated[list[CarIn], Field(min_length=1, max_length=1000)]


class PredictOut(BaseModel):
    price_rub: float
    model_version: str


class BatchOut(BaseModel):
    prices_rub: list[float]
    model_version: str


def create_app(pipeline_dir: Path, model_version: str) -> FastAPI:
    """The baseline app; the pipeline is loaded when the server starts."""
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        state["pipeline"] = load_pipeline(pipeline_dir)
        yield

    app = FastAPI(title="Car price API (baseline)", lifespan=lifespan)

    @app.post("/predict", response_model=PredictOut)
    def predict(car: CarIn) -> PredictOut:
        frame = pd.DataFrame([car.model_dump()])
        price = float(state["pipeline"].predict_price(frame)[0])
        return PredictOut(price_rub=price, model_version=model_version)

    @app.post("/predict/batch", response_model=BatchOut)
    def predict_batch(batch: BatchIn) -> BatchOut:
        frame = pd.DataFrame([car.model_dump() for car in batch.cars])
        prices = state["pipeline"].predict_price(frame)
        return BatchOut(prices_rub=[float(price) for price in prices], model_version=model_version)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready")
    def ready() -> dict[str, Any]:
        if "pipeline" not in state:
            raise HTTPException(status_code=503, detail="model not loaded yet")
        return {"ready": True, "model_version": model_version}

    return app


def create_app_from_env() -> FastAPI:
    """Uvicorn's factory: `BASELINE_PIPELINE_DIR` and `BASELINE_MODEL_VERSION`."""
    return create_app(
        Path(os.environ["BASELINE_PIPELINE_DIR"]),
        os.environ.get("BASELINE_MODEL_VERSION", "unknown"),
    )
