"""Run the dispatch service: `python -m services.dispatch` (settings from the environment)."""

import uvicorn

from services.dispatch.main import create_app
from services.dispatch.settings import DispatchSettings as Settings


def main() -> None:
    """Serve the app with uvicorn on the configured host and port; SIGTERM shuts down gracefully."""
    settings = Settings()
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level.lower(),
                timeout_graceful_shutdown=30)


if __name__ == "__main__":
    main()
