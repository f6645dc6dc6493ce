"""`python -m training.train`: train a model from a YAML config, then export and test it.

The code is `training.fitting.train`; this module only gives the command its name.
"""

import sys

from training.fitting.train import main

if __name__ == "__main__":
    sys.exit(main())
