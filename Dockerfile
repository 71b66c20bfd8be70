# syntax=docker/dockerfile:1
# One image for the metallb-py operator, speaker and the metallbctl CLI:
#   metallb-operator   (Deployment; runs as the non-root user below)
#   metallb-speaker    (DaemonSet; the chart runs it as root with only NET_RAW + NET_ADMIN)
#   metallbctl
# Build: docker build -t ghcr.io/metallb-py/metallb-py:0.1.0 .

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# Only what the wheel needs: the lab (e2e/), tests and benches stay out of the image.
COPY pyproject.toml README.md ./
COPY api/ api/
COPY operator/ operator/
COPY speaker/ speaker/
# operator/metallb_operator/crds links here: metallbctl validate ships the CRD schemas
COPY crds/ crds/
# The project and every dependency as wheels (binary wheels exist for all of them on
# linux/amd64 and arm64, so no compiler is needed).
RUN pip wheel --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="metallb-py" \
      org.opencontainers.image.description="MetalLB-compatible layer-2 load balancer in Python" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels metallb-py \
 && groupadd --gid 65532 metallb \
 && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin metallb
USER 65532:65532
WORKDIR /
CMD ["metallb-operator"]
