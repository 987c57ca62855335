"""``python -m asya_state_function``: the function image's entrypoint."""

import sys

from .main import main

sys.exit(main())
