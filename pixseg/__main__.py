import sys

from pixseg.cli import main

sys.exit(main())
