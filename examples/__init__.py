"""Runnable examples; `examples.steps` holds the Python callables the quickstart uses."""
