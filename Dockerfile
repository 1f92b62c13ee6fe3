# goe2mqtt container: configuration from /config/config.yaml and/or GOE2MQTT_* variables,
# the command journal in the /data volume.
#   docker build -t goe2mqtt .
#   docker run -v "$PWD/config.yaml:/config/config.yaml:ro" -v goe2mqtt-data:/data goe2mqtt
# BASE is any image with Python 3.11 (python3 -m venv must work): the official slim
# image by default; scripts/build-image.sh builds a Debian bookworm one from Debian's
# packages where no image registry is reachable.
# Stage 1 installs goe2mqtt into a venv (compilers and caches stay behind); stage 2
# copies only the venv.
ARG BASE=python:3.11-slim
FROM ${BASE} AS build
RUN python3 -m venv /opt/goe2mqtt
WORKDIR /src
COPY pyproject.toml README.md ./
COPY goe2mqtt ./goe2mqtt
RUN /opt/goe2mqtt/bin/pip install --no-cache-dir --disable-pip-version-check . \
    && /opt/goe2mqtt/bin/pip uninstall -y -q pip setuptools

FROM ${BASE}
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin goe2mqtt \
    && install -d -m 700 -o goe2mqtt -g goe2mqtt /data
COPY --from=build /opt/goe2mqtt /opt/goe2mqtt
# A GOE2MQTT_* variable wins over the config file: state_dir, health_file and http.listen
# in config.yaml are not used in this image; change them with docker run -e.
ENV PATH=/opt/goe2mqtt/bin:$PATH \
    GOE2MQTT_CONFIG=/config/config.yaml \
    GOE2MQTT_HEALTH_FILE=/tmp/goe2mqtt-health.json \
    GOE2MQTT_STATE_DIR=/data \
    GOE2MQTT_HTTP__LISTEN=0.0.0.0:8099 \
    PYTHONUNBUFFERED=1
VOLUME /config /data
USER goe2mqtt
# /metrics, /healthz, /readyz and the status page (README: what it shows, how to guard it).
EXPOSE 8099
# Healthy while the bridge answers /readyz: its tasks run, the MQTT session is up and
# the journal can write. With http.enabled false there is no /readyz: `healthcheck --http`
# then reads the health file set above, as `goe2mqtt healthcheck` without --http does.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["goe2mqtt", "healthcheck", "--http"]
ENTRYPOINT ["goe2mqtt"]
CMD ["run", "--log-format", "json"]
