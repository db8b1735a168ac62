"""`python -m api.cli ...`: the same as the `dateline` command."""

import sys

from api.cli.runner import main

sys.exit(main())
