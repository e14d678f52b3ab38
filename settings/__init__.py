"""Typed settings for every tier: TOML files plus environment overrides, the MQTT broker and TLS."""
