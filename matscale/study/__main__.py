"""`python -m matscale.study` = `python -m matscale study` (the Makefile's spelling before the dispatcher)."""
from matscale.study.cli import main

if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
