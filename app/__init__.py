"""The s4-speech demo app: `python -m app` serves a Gradio UI that classifies spoken commands at any rate."""
