"""``python -m cellnb`` (also what ``torchrun -m cellnb train ...`` runs)."""

import sys

from cellnb.cli import main

sys.exit(main())
