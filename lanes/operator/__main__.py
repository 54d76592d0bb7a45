"""`python -m lanes.operator`: the same command as `kubectl lane operator`."""

from .main import main

if __name__ == "__main__":
    main()
