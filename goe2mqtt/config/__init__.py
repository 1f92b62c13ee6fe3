"""Settings: the config file and GOE2MQTT_* variables, validated into typed models
(`settings`), ${VAR} and environment typing (`environment`), secret files
(`secret_files`). The bottom layer: imports nothing else of goe2mqtt but util."""
