# syntax=docker/dockerfile:1
# One image for the metallb-py operator, speaker and the metallbctl CLI:
#   metallb-operator   (Deployment; runs as the non-root user below)
#   metallb-speaker    (DaemonSet; the chart runs it as root with only NET_RAW + NET_ADMIN)
#   metallbctl
#   metallb-frr        (BGP mode: FRR's daemons, in the speaker Pod's frr container)
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
      org.opencontainers.image.description="MetalLB-compatible load balancer (layer 2 and BGP) in Python" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# Debian's FRR (about 24 MB): the speaker's vtysh in BGP mode, and the daemons that the
# chart's frr container runs from this same image (`metallb-frr`). Nothing starts here.
# Fixed ids (the package would pick any): FRR's vty sockets are frr:frrvty 0770, and the
# speaker Pod joins group 301 (chart: speaker.frr.vtyGroupID) to reach them as a root
# without CAP_DAC_OVERRIDE.
RUN groupadd --system --gid 300 frr \
 && groupadd --system --gid 301 frrvty \
 && useradd --system --uid 300 --gid 300 --groups frrvty --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin frr \
 && apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends frr \
 && chmod 0644 /etc/frr/vtysh.conf \
 && rm -rf /var/lib/apt/lists/*
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels metallb-py \
 && groupadd --gid 65532 metallb \
 && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin metallb
USER 65532:65532
WORKDIR /
CMD ["metallb-operator"]
