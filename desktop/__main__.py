"""`python -m desktop`: the same as the `semdex` command (no command starts the app)."""

import sys

from desktop.cli import main

if __name__ == "__main__":
    sys.exit(main())
