"""python -m metagan.cli: the same as the metagan command."""
import sys

from . import main

sys.exit(main())
