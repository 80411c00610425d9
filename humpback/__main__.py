import sys

from humpback.cli import main

sys.exit(main())
