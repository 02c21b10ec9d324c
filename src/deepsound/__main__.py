"""`python -m deepsound` runs the command line."""

from deepsound.cli import main

main()
