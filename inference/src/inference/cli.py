"""`car-serve`: run the price API under Granian with several worker processes."""

import argparse
import logging
import os
import sys
from typing import Final

import msgspec

from inference.settings import Settings, SettingsError

#: Granian imports this factory in every worker; it reads the settings from the environment.
APP_FACTORY: Final = "inference.app:create_app_from_env"

#: onnxruntime's switch for its telemetry uploader (read once, when it is imported).
ORT_TELEMETRY_SWITCH: Final = "ORT_DISABLE_TELEMETRY"

#: The settings that also have a flag, each overriding its environment variable.
FLAGS: Final = {
    "model_dir": "bundle directory",
    "host": "bind address",
    "port": "bind port",
    "workers": "worker processes",
    "log_level": "log level",
}


def _settings_help() -> str:
    # Read from Settings, so the help shows the one default each setting has.
    lines = []
    for field in msgspec.structs.fields(Settings):
        if field.default_factory is not msgspec.NODEFAULT:
            default = f"{field.default_factory.__name__}() = {field.default_factory()}"
        else:
            default = "unset" if field.default is None else str(field.default)
        lines.append(f"  {field.name.upper():<20} {default}")
    return "environment variables (and their defaults):\n" + "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line flags; each overrides its environment variable, none has a default."""
    parser = argparse.ArgumentParser(
        prog="car-serve",
        description="Serve the car price model in MODEL_DIR with Granian.\nEvery setting is read "
        "from its environment variable; the flags below override theirs.",
        epilog=_settings_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for name, what in FLAGS.items():
        # Values stay strings here: Settings converts and validates them like the variables.
        flag = "--" + name.replace("_", "-")
        parser.add_argument(flag, dest=name, help=f"{what} ({name.upper()})")
    return parser.parse_args(argv)


def header_timeout_ms(settings: Settings) -> int:
    """Granian's HTTP/1 header read timeout: `BODY_TIMEOUT_S`, within Granian's 1 ms to 60 s."""
    return max(1, min(round(settings.body_timeout_s * 1000), 60_000))


def main(argv: list[str] | None = None) -> int:
    """Validate the settings, then run Granian until it is stopped.

    Args:
        argv: Command-line arguments; `sys.argv[1:]` when None.

    Returns:
        The process exit code.
    """
    args = parse_args(argv)
    overrides = {name: getattr(args, name) for name in FLAGS}
    try:
        settings = Settings.from_env(**overrides)
    except SettingsError as error:
        print(f"car-serve: {error}", file=sys.stderr)
        return 2
    # The workers build their app from the environment: make it say what was validated here.
    for name, value in overrides.items():
        if value is not None:
            os.environ[name.upper()] = str(value)
    # A price server sends no telemetry. onnxruntime starts its uploader when it is imported (in
    # each worker, with the app), before any API call could stop it; only this variable, in the
    # environment the workers inherit, keeps it from starting. Forced, not defaulted.
    os.environ[ORT_TELEMETRY_SWITCH] = "1"
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(levelname)s %(name)s %(message)s"
    )

    # Imported late: Granian is needed only once the settings are valid. Nothing here imports
    # prometheus_client, so the workers import it after the multiprocess dir is set.
    from granian import Granian
    from granian.constants import Interfaces
    from granian.http import HTTP1Settings
    from granian.log import LogLevels

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
            # Headers get the body's time limit: Granian's own 30 s default would let a client
            # trickling headers hold a connection three times as long as one trickling a body.
            http1_settings=HTTP1Settings(header_read_timeout=header_timeout_ms(settings)),
            log_level=LogLevels(settings.log_level),
        ).serve()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
