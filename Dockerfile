# goe2mqtt container: mount your config at /config/config.yaml.
#   docker build -t goe2mqtt .
#   docker run -v "$PWD/config.yaml:/config/config.yaml:ro" goe2mqtt
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY goe2mqtt ./goe2mqtt
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin goe2mqtt
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
ENV GOE2MQTT_CONFIG=/config/config.yaml \
    PYTHONUNBUFFERED=1
VOLUME /config
USER goe2mqtt
ENTRYPOINT ["goe2mqtt"]
CMD ["run", "--log-format", "json"]
