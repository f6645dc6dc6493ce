"""`python -m training.synth`: generate a Speech Commands look-alike with text-to-speech.

The code is `training.data.synth`; this module only gives the command its name.
"""

import sys

from training.data.synth import main

if __name__ == "__main__":
    sys.exit(main())
