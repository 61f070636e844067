# One image for all four processes; docker-compose.yml and deploy/k8s/ pick the process with
# `command`.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
COPY gateway ./gateway
COPY marketplan ./marketplan
# Kubernetes init containers wait with it for the migration Job (deploy/k8s/).
COPY deploy/wait_for_schema.py ./deploy/
RUN pip install . && useradd --system --uid 10001 marketplan \
    && mkdir -p /var/lib/marketplan && chown marketplan /var/lib/marketplan
USER marketplan
EXPOSE 8000 8001 8002 8003
CMD ["marketplan", "serve", "gateway"]
