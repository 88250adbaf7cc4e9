"""The pure domain core: schemas, twin state, detectors and alert policy. No I/O happens here."""
