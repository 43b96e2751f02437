"""`python -m desktop`, and the frozen app's entry point: the same as the `semdex` command
(no command starts the app). A frozen Semdex is also its own child process (the safe first
load of a model, a buffer measurement): those flags are routed before anything else."""

import sys

if __name__ == "__main__":
    from desktop.frozen import run_child_flag

    run_child_flag(sys.argv[1:])
    from desktop.cli import main

    sys.exit(main())
