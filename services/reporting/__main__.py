"""Run the reporting service: `python -m services.reporting` (settings from the environment)."""

from services.reporting.main import create_app
from services.reporting.settings import ReportingSettings as Settings
from shared.platform.kit import serve


def main() -> None:
    """Serve the app on the configured host and port (shared/platform/kit.py serve)."""
    serve(create_app, Settings())


if __name__ == "__main__":
    main()
