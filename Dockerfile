# One image for the three services; the command picks the service:
#   python -m services.intake | python -m services.dispatch | python -m services.reporting
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONUNBUFFERED=1 PYTHONIOENCODING=utf-8
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
COPY gridcase ./gridcase
COPY deploy/tenants ./deploy/tenants
RUN pip install --no-cache-dir .
ENV GRIDCASE_TENANTS_DIR=/app/deploy/tenants
USER nobody
