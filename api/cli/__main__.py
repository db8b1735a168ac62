"""`python -m api.cli ...`: the same as the `dateline` command."""

import sys

from dateline.api.cli.runner import main

sys.exit(main())
