"""One lock for loading Hugging Face models in a process whose engine threads load them at the same time.

transformers 5 resolves its top-level names lazily, on first use, and two threads resolving them at once fail with
"cannot import name 'AutoModel' from 'transformers'" (4 threads in a fresh interpreter: 3 of 3 tries failed). Sail
runs each UDF partition on a thread of its own, so a night whose teacher band spans several partitions built two
encoders at once, and the 1M night died in classify of it. Every first import of transformers and every model load
in the product holds this lock; the loads are once per process, so holding it costs nothing after them.
"""

from __future__ import annotations

import threading

LOAD_LOCK = threading.RLock()
