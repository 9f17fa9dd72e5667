"""Run the intake service: `python -m services.intake` (settings from the environment)."""

import uvicorn

from services.intake.main import create_app
from services.intake.settings import IntakeSettings as Settings


def main() -> None:
    """Serve the app with uvicorn on the configured host and port; SIGTERM shuts down gracefully."""
    settings = Settings()
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level.lower(),
                timeout_graceful_shutdown=30)


if __name__ == "__main__":
    main()
