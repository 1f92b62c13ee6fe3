"""Talking to the broker: the resilient session (`session`) over aiomqtt and paho
(`client`), compressed retained payloads (`retained`), the topic layout (`topics`) and
Home Assistant discovery as a pure plan (`discovery`). Knows nothing of HTTP."""
