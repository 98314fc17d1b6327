"""`python -m bitbranch ...`: the same as the `bitbranch` console script (works without installing)."""

import sys

from bitbranch.cli import main

sys.exit(main())
