"""Run the dispatch service: `python -m services.dispatch` (settings from the environment)."""

from services.dispatch.main import create_app
from services.dispatch.settings import DispatchSettings as Settings
from shared.platform.kit import serve


def main() -> None:
    """Serve the app on the configured host and port (shared/platform/kit.py serve)."""
    serve(create_app, Settings())


if __name__ == "__main__":
    main()
