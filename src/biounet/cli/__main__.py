"""``python -m biounet.cli`` (and ``torchrun ... -m biounet.cli``): the ``biounet`` command."""

import sys

from biounet.cli import main

sys.exit(main())
