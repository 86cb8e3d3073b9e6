"""python -m jobengine_client: the `jobengine` command line."""

from .cli import main

main()
