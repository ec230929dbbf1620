# The Prefect server of docker-compose.yml: Prefect's own image with prefect-redis added, so
# the API and the background services (two containers) share events, leases, the worker
# cleanup queue and Docket through Redis. Installed at build time, not through the image's
# EXTRA_PIP_PACKAGES (pip at every start): a restart needs no package index, and the
# version is the one written here. docs/decisions/0027-compose-stack.md.
#
# The tag is the Prefect our pyproject.toml resolves (tests/test_compose.py checks they agree):
# server and clients (our worker, API replicas and deploy step) speak the same API.
ARG PREFECT_IMAGE=prefecthq/prefect:3.8.8-python3.11

FROM ${PREFECT_IMAGE} AS prefect-server

# 0.3.0 needs prefect>=3.7.4 and redis>=8; pinning prefect to the image's own version keeps
# pip from moving it.
ARG PREFECT_REDIS_VERSION=0.3.0
RUN pip install --no-cache-dir \
      "prefect-redis==${PREFECT_REDIS_VERSION}" \
      "prefect==$(python -c 'import prefect; print(prefect.__version__)')" \
 && python -c "import prefect_redis.messaging, prefect_redis.ordering, prefect_redis.lease_storage, prefect_redis.cleanup_queue"
