"""The layers hold (docs/DESIGN.md §4): import-linter's contracts, and module size."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_SERVICE_MODULE_LINES = 400


def test_import_contracts_are_kept() -> None:
    lint_imports = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint_imports is not None, "import-linter is not installed (pip install -e .[test])"
    result = subprocess.run(
        [lint_imports, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_no_service_module_is_over_the_size_limit() -> None:
    sizes = {
        str(path.relative_to(ROOT)): len(path.read_text().splitlines())
        for path in (ROOT / "service").rglob("*.py")
    }
    too_long = {path: n for path, n in sizes.items() if n > MAX_SERVICE_MODULE_LINES}
    assert not too_long, f"split these modules (over {MAX_SERVICE_MODULE_LINES} lines): {too_long}"


def test_the_media_sniffer_imports_without_the_model_stack() -> None:
    # The gateway uses it; the gateway image has no torch, PyAV, Pillow or numpy.
    code = (
        "import sys; from encoders.media.sniff import sniff, compatible, ACCEPTED; "
        "heavy = {'torch', 'av', 'PIL', 'numpy'} & set(sys.modules); "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)
