"""``python -m loopwise`` runs the CLI."""

from loopwise.cli import main

main()
