"""Shared test configuration: quiet TensorFlow logs, one XLA compilation cache for the run."""

import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Subprocess tests compile the same models again: share XLA's persistent cache (per user).
os.environ.setdefault("PKFNET_CACHE_DIR", os.path.join(tempfile.gettempdir(), "pkfnet-test-cache"))

from generator.integrate import enable_compilation_cache  # noqa: E402

enable_compilation_cache()
