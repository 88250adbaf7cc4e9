"""A simulated fleet of medical devices that behave, degrade and fail like real ones.

* :mod:`simulators.signals` - daily patterns, lags and duty cycles;
* :mod:`simulators.devices` - the healthy behaviour of each device type;
* :mod:`simulators.faults` - degradations, sensor and network faults, with ground truth;
* :mod:`simulators.device` - one device: model + faults + settings + protocol;
* :mod:`simulators.fleet` - which devices exist and which faults they get, from a seed;
* :mod:`simulators.fast_forward` - a simulated clock, no network: a labelled dataset;
* :mod:`simulators.mqtt_fleet` - the fleet live over MQTT (paho-mqtt).
"""
