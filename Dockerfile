# syntax=docker/dockerfile:1
# Hearth control-plane image: one image, three entry points.
#   docker run IMAGE api      -> hearth serve       (HTTP API on :8000)
#   docker run IMAGE worker   -> hearth worker      (reconcile worker)
#   docker run IMAGE migrate  -> hearth db migrate  (one-shot schema migration)
# Anything else is executed as given (e.g. `docker run IMAGE hearth --help`).
#
# libgit2 comes inside the pygit2 wheel and every other dependency installs
# from wheels, so the build stage needs no compiler.

FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/hearth
COPY pyproject.toml README.md ./
COPY engine ./engine
COPY api ./api
COPY schemas ./schemas
RUN /opt/hearth/bin/pip install --no-cache-dir .

FROM python:3.11-slim-bookworm AS runtime
# openssh-client: ansible-runner reaches production appliances over SSH.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends openssh-client \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 hearth \
    && useradd --system --uid 10001 --gid hearth --home-dir /home/hearth --create-home \
        --shell /usr/sbin/nologin hearth \
    && mkdir -p /var/lib/hearth/repos /var/lib/hearth/data \
    && chown -R hearth:hearth /var/lib/hearth
COPY --from=build /opt/hearth /opt/hearth
COPY --chmod=0755 deploy/hearth-entrypoint.sh /usr/local/bin/hearth-entrypoint
# Playbooks and roles are data the worker hands to ansible-runner; the example
# tenant is what the demo loads. Neither is part of the Python package.
COPY ansible /app/ansible
COPY example-config-repo /app/example-config-repo
ENV PATH=/opt/hearth/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    REPOS_DIR=/var/lib/hearth/repos \
    HEARTH_DATA_DIR=/var/lib/hearth/data
WORKDIR /app
USER 10001:10001
EXPOSE 8000
ENTRYPOINT ["hearth-entrypoint"]
CMD ["api"]
