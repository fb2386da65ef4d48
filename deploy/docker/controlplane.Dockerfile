# The control plane image: `controlplane serve` as a non-root user, health from its gRPC health service.
#   docker build -f deploy/docker/controlplane.Dockerfile -t ecs-xds-controlplane:0.1.0 .
# It also ships the route-guide sample (python -m controlplane.routeguide), which the stack runs.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY controlplane ./controlplane
RUN python -m venv /opt/controlplane \
    && /opt/controlplane/bin/pip install --no-cache-dir --no-compile . \
    && /opt/controlplane/bin/python -m compileall -q /opt/controlplane/lib

FROM ${PYTHON_IMAGE}
COPY --from=build /opt/controlplane /opt/controlplane
COPY deploy/docker/probe.py /opt/controlplane/probe.py
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin controlplane
USER 10001
ENV PATH=/opt/controlplane/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CONTROLPLANE_LOG_FORMAT=json
# xDS (and gRPC health), admin API (loopback by default), Prometheus metrics.
EXPOSE 18000 18001 18002
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/opt/controlplane/bin/python", "/opt/controlplane/probe.py", "grpc", "127.0.0.1:18000"]
ENTRYPOINT ["controlplane"]
CMD ["serve"]
