# wirewatch worker image: small, non-root, pinned base.
FROM python:3.11.7-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY streams ./streams
RUN pip install --no-cache-dir --prefix=/install ".[rocksdb]"

FROM python:3.11.7-slim-bookworm
RUN useradd --uid 10001 --user-group --create-home --home-dir /app wirewatch
COPY --from=build /install /usr/local
COPY --chown=10001:10001 samples /app/samples
COPY --chown=10001:10001 bin/produce-samples /app/bin/produce-samples
USER 10001
WORKDIR /app
ENV WIREWATCH_WEB_HOST=0.0.0.0 \
    WIREWATCH_DATA_DIR=/app/data \
    PYTHONUNBUFFERED=1
EXPOSE 6066
ENTRYPOINT ["wirewatch"]
CMD ["worker"]
