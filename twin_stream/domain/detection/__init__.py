"""Online anomaly detection and failure prediction (pure, no I/O)."""
