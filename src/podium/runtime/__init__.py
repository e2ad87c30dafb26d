"""The runtime: drives runs (the only place that does I/O on a run's behalf) and streams events."""
