"""What a gunicorn worker imports at start: only what every request needs.

Each library loaded at start costs every worker its memory for good (docs/performance-history.md,
"Worker memory"); the ones only some pages use are imported where they are used.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

ON_FIRST_USE = ("qrcode", "PIL", "openpyxl", "alembic", "mako", "flask_migrate")


def test_create_app_leaves_the_libraries_of_a_few_pages_unloaded(tmp_path):
    code = (
        "import json, sys\n"
        "from pointsapp import create_app\n"
        "create_app()\n"
        f"print(json.dumps([m for m in {ON_FIRST_USE!r} if m in sys.modules]))\n"
    )
    env = dict(os.environ, DATABASE_URL=f"sqlite:///{tmp_path / 'app.db'}", POINTS_INSTANCE_PATH=str(tmp_path / "instance"))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
