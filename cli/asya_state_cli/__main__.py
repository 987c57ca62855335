"""``python -m asya_state_cli`` is ``asya-state``."""

import sys

from .main import main

sys.exit(main())
