"""Developer tooling, never imported by the platform: the local stack of real services, the
demo, the benchmarks, the evaluations and the simulated fleet's runner.

Only this package may import ``simulators`` (tests/unit/test_layout.py checks it).
"""
