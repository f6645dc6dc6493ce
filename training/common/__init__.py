"""What every room shares, and nothing of any room.

    audio     reading audio files (soundfile, librosa), resampling, decimation, `prepare` (a clip at another rate);
              the data room reads clips with it and the serving face hands it to the demo, so both hear alike
    cli       one-line errors and the data-folder checks of the command-line tools
    progress  progress bars on a terminal, plain timed lines in a log
    atomic    files replaced in one step (exports, checkpoints)

Imports: nothing of the project.
"""
