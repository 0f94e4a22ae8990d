# One image for every Concord service; docker-compose.yml picks the command.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml ./
COPY libs ./libs
COPY services ./services
COPY sandbox ./sandbox
COPY data ./data
RUN pip install --no-cache-dir . && useradd --system --uid 10001 concord && mkdir -p /var/lib/concord \
    && chown concord /var/lib/concord
USER concord
