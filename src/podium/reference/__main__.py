"""`python -m podium.reference`: print docs/reference.md."""

from podium.reference import main

main()
