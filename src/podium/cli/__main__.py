"""`python -m podium.cli`."""

from podium.cli.app import main

main()
