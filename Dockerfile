# AITrader's image: the `aitrader` command and everything it runs (the realtime server in
# each REALTIME_ROLE, migrations, the flows a Prefect process worker runs). docker-compose.yml
# runs it; docs/deploy.md says how.
#
#   docker build -t aitrader .                                      # extras: dask (no torch)
#   docker build --build-arg EXTRAS=dask,ml -t aitrader:ml .        # + the training flow (torch)
#
# `builder` installs the dependencies and the project into a venv, with compilers at hand
# for any dependency that has no wheel for the platform. `runtime` copies only that venv into
# a fresh slim image: no compiler, no pip cache, no sources beyond what Prefect names by path,
# an unprivileged user.

ARG PYTHON_IMAGE=python:3.11-slim

# --- builder -------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder

RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*

ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv && pip install --upgrade pip

# Extras of pyproject.toml installed with the project, comma-separated. `dask` (prefect-dask:
# sweeps on a Dask cluster, BACKTEST_DASK_ADDRESS) is small. `ml` is torch and transformers,
# gigabytes: without it the `training` deployment is registered but its runs fail on
# `import torch`, and SENTIMENT_MODEL_DIR falls back to the lexicon. `gpu` (TensorRT) needs a
# CUDA base image, not this one. An unknown extra fails the build (KeyError).
ARG EXTRAS=dask
# With `ml`: torch's CPU wheels. The default index's torch is the CUDA build.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

WORKDIR /src
# The dependencies come from pyproject.toml alone, so a code change reuses this layer.
COPY pyproject.toml ./
RUN python -c 'import os, tomllib; \
project = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
extras = [e.strip() for e in os.environ["EXTRAS"].split(",") if e.strip()]; \
print("\n".join(project["dependencies"] + [d for e in extras for d in project["optional-dependencies"][e]]))' \
    > requirements.txt \
 && case ",${EXTRAS}," in *,ml,*) set -- --extra-index-url "${TORCH_INDEX_URL}" ;; *) set -- ;; esac \
 && pip install "$@" -r requirements.txt

# The context is what .dockerignore lets in: pyproject.toml, README.md (the package's
# readme), prefect.yaml and the packages.
COPY . ./
RUN pip install --no-deps . && pip check

# --- runtime -------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    NUMBA_CACHE_DIR=/app/data/numba-cache

RUN groupadd --system --gid 10001 aitrader \
 && useradd --system --uid 10001 --gid aitrader --create-home --home-dir /home/aitrader \
      --shell /usr/sbin/nologin aitrader

COPY --from=builder /opt/venv /opt/venv

# The code runs from the installed package. /app holds what Prefect names by path: prefect.yaml
# records /app as the flows' working directory when `prefect deploy` runs here (its `pull:
# null`), and its entrypoints are files (flows/weekly_council.py:weekly_council).
WORKDIR /app
COPY prefect.yaml ./
COPY flows/ ./flows/
# Relative paths in settings (PAPER_STATE_DIR=data/paper, MODEL_DIR=data/models, JOBS_LOG_DIR,
# BACKTEST_PLOT_DIR) land here: the one writable directory, a volume in docker-compose.yml.
# A new named volume copies this directory's owner, so the user below can write it.
RUN mkdir -p /app/data && chown 10001:10001 /app/data

USER 10001:10001
EXPOSE 8000
# Liveness of the default command. docker-compose.yml sets each service's own check (the
# worker's port, /ready for the realtime roles, none for the one-shot commands).
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]
ENTRYPOINT ["aitrader"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
