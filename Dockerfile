# stream-aimass worker image (CPU).
#   docker build -t stream-aimass:latest .
#   docker run --rm stream-aimass:latest --help
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# torch first, from its own index (CPU unless --build-arg TORCH_INDEX=.../whl/cu126: the
# GPU image of ops/k8s/overlays/gpu), so `pip install .` does not pull CUDA wheels.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
RUN pip install torch==2.13.0 --index-url ${TORCH_INDEX}

# Then the package itself (dependency resolution keeps the torch installed above).
COPY pyproject.toml README.md ./
COPY stream_aimass ./stream_aimass
RUN pip install . && stream-aimass --help > /dev/null

# Unprivileged runtime user with a writable data directory.
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin aimass \
    && mkdir -p /data \
    && chown aimass:aimass /data

ENV AIMASS_DATA_DIR=/data \
    AIMASS_WEB_HOST=0.0.0.0 \
    AIMASS_WEB_PORT=6066

USER aimass
VOLUME ["/data"]
EXPOSE 6066

ENTRYPOINT ["stream-aimass"]
CMD ["worker"]
