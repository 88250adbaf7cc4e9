"""Benchmarks behind ``twin-stream bench``: each measures against a peer in the same run."""
