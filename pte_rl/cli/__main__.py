"""`python -m pte_rl.cli`: the same as the `pte-rl` console script."""

import sys

from pte_rl.cli import main

sys.exit(main())
