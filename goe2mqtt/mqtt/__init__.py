"""Talking to the broker: the resilient session (`session`) over aiomqtt and paho
(`client`), what is retained and sent again after a reconnect (`retained`: payloads,
compressed when large, and families of topics built again when sent), the topic layout
(`topics`). Knows nothing of HTTP."""
