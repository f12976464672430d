"""`python -m grpo_app ...`: see grpo_app/cli.py."""

import sys

from .cli import main

sys.exit(main())
