"""`python -m faultlab`."""

from faultlab.cli import main

main()
