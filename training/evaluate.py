"""`python -m training.evaluate`: accuracy of exported models at several sampling rates.

The code is `training.evaluation.evaluate`; this module only gives the command its name.
"""

import sys

from training.evaluation.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
