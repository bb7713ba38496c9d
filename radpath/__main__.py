"""`python -m radpath ...` runs the `radpath` command."""

import sys

from radpath.cli import main

sys.exit(main())
