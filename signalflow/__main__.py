"""`python -m signalflow` runs the command line, as the `signalflow` script does."""

from signalflow.cli import app

app()
