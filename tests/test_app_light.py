"""The UI process stays light: building the whole app imports no torch (it opens fast and never trains)."""
import subprocess
import sys


def test_building_the_app_imports_no_torch(tmp_path):
    code = ("import sys; from app.ui import build_demo; build_demo(); "
            "heavy = [m for m in ('torch', 'diffusers', 'transformers', 'peft') if m in sys.modules]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True, env={"G2RPO_DATA_DIR": str(tmp_path), "PATH": ""},
                   cwd=".")
