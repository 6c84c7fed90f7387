"""`python -m stylelora`: a thin entry point; all logic lives in `stylelora.cli`."""

from stylelora.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
