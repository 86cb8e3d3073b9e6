"""The `jobengine` command line (needs the [cli] extra: typer and rich)."""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from .app import app
    except ImportError as exc:  # the SDK alone was installed
        print(f"jobengine: the CLI needs the [cli] extra (pip install 'jobengine-client[cli]'): {exc}",
              file=sys.stderr)
        sys.exit(2)
    app()
