import sys

from lmprof.cli import main

sys.exit(main())
