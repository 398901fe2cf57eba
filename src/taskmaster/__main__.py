"""`python -m taskmaster` runs the `taskmaster` command."""

from taskmaster.cli.main import main

main()
