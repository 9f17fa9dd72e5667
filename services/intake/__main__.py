"""Run the intake service: `python -m services.intake` (settings from the environment)."""

from services.intake.main import create_app
from services.intake.settings import IntakeSettings as Settings
from shared.platform.kit import serve


def main() -> None:
    """Serve the app on the configured host and port (shared/platform/kit.py serve)."""
    serve(create_app, Settings())


if __name__ == "__main__":
    main()
