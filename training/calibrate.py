"""`python -m training.calibrate`: choose a keyword spotter's rejection offset on the validation speakers.

The code is `training.fitting.calibrate`; this module only gives the command its name.
"""

import sys

from training.fitting.calibrate import main

if __name__ == "__main__":
    sys.exit(main())
