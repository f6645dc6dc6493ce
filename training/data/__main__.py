"""`python -m training.data download|info`: the Speech Commands data tools.

The code is `training.data.speech_commands`; this module only gives the command its name.
"""

import sys

from training.data.speech_commands import main

if __name__ == "__main__":
    sys.exit(main())
