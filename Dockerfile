# The cachedproxy image: one image for the API, worker, beat, Flower and the demo upstream.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY shared/ shared/
COPY worker/ worker/
COPY api/ api/
COPY demo/ demo/
COPY celeryconfig.py flowerconfig.py catalogue.toml ./
# Editable, so the project directory (config.ini, run/) is /app.
RUN pip install --no-cache-dir -e . && useradd --system --home-dir /app cachedproxy \
    && mkdir -p /app/run && chown cachedproxy /app/run
USER cachedproxy
EXPOSE 8080
CMD ["python", "-m", "api"]
