"""twin-stream: a digital-twin streaming platform for medical devices."""

__version__ = "0.1.0"

__all__ = ["__version__"]
