"""``python -m cloud``: the same as ``relay-cloud``."""

from cloud.cli import app

app(prog_name="relay-cloud")
