"""The `podium` command line (Typer + Rich); the entry point is `podium.cli.app:main`."""
