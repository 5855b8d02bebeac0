import sys

from archcc.cli import main

sys.exit(main())
