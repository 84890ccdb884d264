# syntax=docker/dockerfile:1
# Lumigram: one image for every process. `lumigram run` (the default) is everything in one
# process; `bot`, `worker`, `api` and `migrate` are the split processes of compose.yaml.
#
#   docker build -t lumigram .
#   docker run --init --env-file .env -v lumigram-data:/data -p 127.0.0.1:8080:8080 lumigram
#
# More: docs/deploy.md.

ARG PYTHON_IMAGE=python:3.12-slim

# --- builder: the project and its locked dependencies in a venv -------------------------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/lumigram/bin:$PATH
RUN python -m venv /opt/lumigram
WORKDIR /src

# The dependencies first, pinned by constraints.txt (the lock), in a layer of their own:
# a change to the code alone does not reinstall them. Only the package's metadata and its
# version file are needed for that.
COPY pyproject.toml constraints.txt README.md ./
COPY src/lumigram/__init__.py src/lumigram/__init__.py
# With the `scale` extra (Redis, taskiq, aiobotocore) so that one image serves the
# embedded mode and the scaled-out compose.yaml alike.
RUN pip install -c constraints.txt '.[scale]'

# Then the code itself (the dependencies are already there).
COPY src/ src/
RUN pip install --no-deps --force-reinstall -c constraints.txt '.[scale]' \
    && lumigram --version

# --- runtime ----------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

# HTTP_HOST: in a container the server must listen on every interface, not 127.0.0.1.
# The database (embedded mode: a SQLite file) and the generated files live on /data.
ENV PATH=/opt/lumigram/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HTTP_HOST=0.0.0.0 \
    HTTP_PORT=8080 \
    STORAGE_DIR=/data/files \
    DATABASE_URL=sqlite+aiosqlite:////data/lumigram.db

RUN groupadd --system --gid 10001 lumigram \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin lumigram \
    && mkdir -p /app /data/files \
    && chown 10001:10001 /app /data /data/files

COPY --from=builder /opt/lumigram /opt/lumigram

WORKDIR /app
USER 10001:10001
VOLUME ["/data"]
EXPOSE 8080

# /healthz does no I/O: it says the process is alive (/readyz is for the orchestrator that
# wants the database and Telegram too). No curl in the slim image: Python's urllib.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('HTTP_PORT', '8080'), timeout=4)"]

ENTRYPOINT ["lumigram"]
CMD ["run"]
