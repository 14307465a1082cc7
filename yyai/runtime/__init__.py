"""Model runtime: loading, versioning, batching and inference, free of Django.

Nothing below this package imports django; a test holds it to that.
"""

import os

# TensorFlow reads these once, at its import: keep its C++ info logs quiet by default.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
