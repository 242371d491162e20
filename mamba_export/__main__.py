"""``python -m mamba_export`` runs the command line."""

import sys

from mamba_export.cli.main import main

sys.exit(main())
