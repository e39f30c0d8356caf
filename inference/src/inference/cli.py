"""`car-serve`: run the price API under Granian with several worker processes."""

import argparse
import logging
import os
import sys
from typing import Final

from inference.settings import Settings, SettingsError

#: Granian imports this factory in every worker; it reads the settings from the environment.
APP_FACTORY: Final = "inference.app:create_app_from_env"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line flags; each overrides its environment variable."""
    parser = argparse.ArgumentParser(
        prog="car-serve",
        description="Serve the car price model in MODEL_DIR with Granian. Every setting is also "
        "read from its environment variable (MODEL_DIR, HOST, PORT, WORKERS, ORT_THREADS, "
        "BATCH_ENABLED, BATCH_MAX_ROWS, BATCH_WINDOW_US, QUEUE_MAX, REQUEST_DEADLINE_MS, "
        "BATCH_LIMIT, MAX_BODY_BYTES, RELOAD_TOKEN, RELOAD_POLL_S).",
    )
    parser.add_argument("--model-dir", help="bundle directory (MODEL_DIR, default data/model)")
    parser.add_argument("--host", help="bind address (HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="bind port (PORT, default 8000)")
    parser.add_argument("--workers", type=int, help="worker processes (WORKERS, default: CPUs)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Validate the settings, then run Granian until it is stopped.

    Args:
        argv: Command-line arguments; `sys.argv[1:]` when None.

    Returns:
        The process exit code.
    """
    args = parse_args(argv)
    overrides = {
        "model_dir": args.model_dir,
        "host": args.host,
        "port": args.port,
        "workers": args.workers,
    }
    try:
        settings = Settings.from_env(**overrides)
    except SettingsError as error:
        print(f"car-serve: {error}", file=sys.stderr)
        return 2
    # The workers build their app from the environment: make it say what was validated here.
    for name, value in overrides.items():
        if value is not None:
            os.environ[name.upper()] = str(value)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s %(message)s")

    # Imported late: Granian and the metrics are needed only once the settings are valid.
    from granian import Granian
    from granian.constants import Interfaces

    from inference.multiprocess import multiprocess_environment

    with multiprocess_environment():
        Granian(
            APP_FACTORY,
            factory=True,
            interface=Interfaces.ASGI,
            address=settings.host,
            port=settings.port,
            workers=settings.workers,
            respawn_failed_workers=True,
            log_level=args.log_level,
        ).serve()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
