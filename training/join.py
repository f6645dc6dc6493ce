"""`python -m training.join`: join exported runs of one recipe into one ensemble export.

The code is `training.fitting.join`; this module only gives the command its name.
"""

import sys

from training.fitting.join import main

if __name__ == "__main__":
    sys.exit(main())
