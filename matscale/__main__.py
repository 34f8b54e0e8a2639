import sys

from matscale.cli import main

sys.exit(main())
