"""The GPU suite (benchmarks/gpu_suite.py) runs end to end at tiny sizes on the CPU, so the
command waiting for the first GPU machine does not rot."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_gpu_suite_runs_tiny_on_cpu(tmp_path):
    out = tmp_path / "gpu.md"
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "gpu_suite.py"), "--tiny", "--repeats", "1",
                           "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=900,
                          env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = out.read_text()
    for section in ("## Prior cost", "## Environments", "## LaGO / PPO per update", "## Short LaGO run"):
        assert section in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| backbone")
            and not line.startswith("| env |") and not line.startswith("| suite")]
    assert any(r.startswith("| random:test-tiny | bfloat16 | 8 |") for r in rows)
    assert any(r.startswith("| point_mass | 4 |") for r in rows)
    assert any(r.startswith("| point_mass | random:test-tiny | 3 |") for r in rows)
