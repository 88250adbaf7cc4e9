"""``python -m twin_stream`` runs the ``twin-stream`` command."""

from twin_stream.cli import app

app()
