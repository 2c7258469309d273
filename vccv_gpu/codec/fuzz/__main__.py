"""`python -m vccv_gpu.codec.fuzz`."""

import sys

from . import main

sys.exit(main())
