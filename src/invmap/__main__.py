"""``python -m invmap …`` = ``invmap …`` (what ``torchrun -m invmap train …`` runs on every rank)."""

import sys

from .cli import main

sys.exit(main())
