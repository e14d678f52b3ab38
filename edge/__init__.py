"""The edge gateway: a Jetson-class box or a PC next to the patients, between their wearables and the cloud.

It takes ECG frames from many wearables (BLE or MQTT), keeps each device's stream in order, finds
beats and rhythms, reconstructs 12 leads and classifies 10-s windows with ONNX models, raises
prioritised alarms, and sends alerts and windows to the cloud through a durable outbox. It never
imports the cloud tier or the simulator, and runs without torch (models come as ONNX artifacts).

Modules and subpackages, from the wire up:

- :mod:`edge.ingest`: one :class:`~edge.ingest.session.DeviceSession` per device, and MQTT ingest;
- :mod:`edge.ble`: the BLE central that keeps many wearables connected (bleak, bumble);
- :mod:`edge.stream`: per-device stream state (order, gaps, clock, quality, model-rate resampling);
- :mod:`edge.signal`: streaming filters, QRS detection, heart rate, RR irregularity, pacing, ST;
- :mod:`edge.inference`: windows, batched ONNX inference (3→12 lead VAE, classifier);
- :mod:`edge.alarms`: the rules engine that turns evidence into IEC 60601-1-8 alerts;
- :mod:`edge.uplink`: the SQLite outbox and its MQTT QoS 1 uplink to the cloud;
- :mod:`edge.observability`: Prometheus metrics, structured logs, the status file;
- :mod:`edge.config`: the gateway's TOML configuration;
- :mod:`edge.agent` (:class:`~edge.agent.EdgeAgent`, the core that wires a device's data through
  all of the above), :mod:`edge.runtime` (the running gateway, ``ecgstream edge run``),
  :mod:`edge.errors` (:class:`~edge.errors.EdgeError`, the root of the edge's own exceptions).

Scoring the edge on annotated records is not part of the gateway: see :mod:`evaluation`.
"""
