"""The README's Python snippets run as written."""

import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_snippets_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) >= 2
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)
    variance = namespace["ensemble"]["V_u"].sel(time=1.0).values
    pkf_variance = namespace["forecast"]["V_u"].sel(time=1.0).values
    assert np.linalg.norm(pkf_variance - variance) / np.linalg.norm(variance) < 0.12
    assert abs(namespace["learner"].trainable_scalars["b"] - 0.75) < 0.05
