"""momentad: MOMENT vs classic detectors on microservice telemetry."""

__version__ = "0.1.0"
