"""``python -m audit.worker``: the worker's entry point (see :mod:`audit.worker.main`)."""

import sys

from audit.worker.main import main

sys.exit(main())
