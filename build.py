"""bakery entry point: `python build.py --help`."""

import sys

from bakery.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], exec_enter=True))
