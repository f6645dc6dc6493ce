"""Training, data and evaluation code for s4-speech."""
