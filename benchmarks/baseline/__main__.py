"""`python -m benchmarks.baseline`: serve the baseline with uvicorn."""

import argparse
import os


def main(argv: list[str] | None = None) -> int:
    """Run uvicorn on the baseline app until stopped."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.baseline", description=__doc__)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--pipeline", help="joblib file of a pipeline with .predict (stand-in)")
    source.add_argument("--pipeline-dir", help="directory written by `car-train train`")
    parser.add_argument("--model-version", default="unknown")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    if args.pipeline:
        os.environ["BASELINE_PIPELINE"] = args.pipeline
    else:
        os.environ["BASELINE_PIPELINE_DIR"] = args.pipeline_dir
    os.environ["BASELINE_MODEL_VERSION"] = args.model_version

    import uvicorn

    uvicorn.run(
        "benchmarks.baseline.app:create_app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="warning",
        # Access logs off, as in our server: both measure serving, not logging.
        access_log=False,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
