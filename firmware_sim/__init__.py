"""Virtual wearables: physiological 12-lead synthesis, recorded-stream replay, device profiles,
packetisation, fault injection, and BLE, MQTT and loopback transports.

It speaks to the gateway only through ``protocol`` (the wire contract), so anything it sends is what
a real device could send. ``ecgstream sim …`` drives it; scenarios (TOML) script whole wards.
"""
