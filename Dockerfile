# goe2mqtt container: configuration from /config/config.yaml and/or GOE2MQTT_* variables.
#   docker build -t goe2mqtt .
#   docker run -v "$PWD/config.yaml:/config/config.yaml:ro" goe2mqtt
# Stage 1 builds the wheels (compilers and caches stay behind); stage 2 only installs them.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY goe2mqtt ./goe2mqtt
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin goe2mqtt
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels \
    && install -d -m 700 -o goe2mqtt -g goe2mqtt /data
# /data holds the command journal: give it a volume so commands survive the container.
ENV GOE2MQTT_CONFIG=/config/config.yaml \
    GOE2MQTT_HEALTH_FILE=/tmp/goe2mqtt-health.json \
    GOE2MQTT_STATE_DIR=/data \
    PYTHONUNBUFFERED=1
VOLUME /config /data
USER goe2mqtt
# Healthy while the bridge refreshes its health file and is connected to the broker.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["goe2mqtt", "healthcheck"]
ENTRYPOINT ["goe2mqtt"]
CMD ["run", "--log-format", "json"]
