# The Envoy image of the mesh: the official Envoy binary, and an entrypoint that writes the bootstrap
# from the ECS task metadata endpoint v4 (`controlplane bootstrap --from-ecs-metadata`), then execs Envoy.
#   docker build -f deploy/docker/envoy.Dockerfile -t ecs-xds-envoy:0.1.0 .
# Settings are environment variables: see deploy/docker/envoy-entrypoint.sh and docs/deploy.md.
#
# Envoy comes from the official image, at the version the control plane is tested with. The
# bootstrap generator needs Python >= 3.11, which the Envoy image's Ubuntu does not promise, so
# the binary moves onto the same Python base as the control plane image rather than the reverse.
ARG ENVOY_IMAGE=envoyproxy/envoy:v1.40.0
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${ENVOY_IMAGE} AS envoy

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY controlplane ./controlplane
RUN python -m venv /opt/controlplane \
    && /opt/controlplane/bin/pip install --no-cache-dir --no-compile . \
    && /opt/controlplane/bin/python -m compileall -q /opt/controlplane/lib

FROM ${PYTHON_IMAGE}
COPY --from=envoy /usr/local/bin/envoy /usr/local/bin/envoy
COPY --from=build /opt/controlplane /opt/controlplane
COPY deploy/docker/probe.py /opt/controlplane/probe.py
COPY deploy/docker/envoy-entrypoint.sh /usr/local/bin/envoy-entrypoint.sh
# uid 101 as in the official image, so volumes and task definitions (User: "101") carry over.
RUN useradd --system --uid 101 --no-create-home --shell /usr/sbin/nologin envoy \
    && envoy --version
USER 101
ENV PATH=/opt/controlplane/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1
# Edge listener (sidecars: outbound 15001, inbound 15000); the admin interface stays on 127.0.0.1:9901.
EXPOSE 10000 15000 15001
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["/opt/controlplane/bin/python", "/opt/controlplane/probe.py", "http", "http://127.0.0.1:9901/ready"]
ENTRYPOINT ["/usr/local/bin/envoy-entrypoint.sh"]
CMD ["--log-level", "info"]
