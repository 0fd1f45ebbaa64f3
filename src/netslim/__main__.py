"""``python -m netslim`` (and ``torchrun -m netslim``) runs the command-line interface."""

from netslim.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
