"""The child process of the hostile campaigns (test_hardening_campaign.py, test_hardening_methods.py):
runs each case's `invmap` argv in one process and prints, per case, its exit status, stderr,
seconds, peak RSS and a digest of the whole tree under ROOT, as JSON.

    python tests/_campaign_child.py ROOT CASES_JSON
"""

import contextlib
import hashlib
import io
import json
import resource
import sys
import time
from pathlib import Path
from invmap.cli import main

def digest(root):
    h = hashlib.sha1()
    for p in sorted(Path(root).rglob("*")):
        if "__pycache__" in p.parts:
            continue
        h.update(str(p.relative_to(root)).encode())
        if p.is_file() and not p.is_symlink():
            h.update(hashlib.sha1(p.read_bytes()).digest())
    return h.hexdigest()

root, cases = sys.argv[1], json.loads(sys.argv[2])
out = []
for name, argv in cases:
    err = io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            rc = main(argv)
        except SystemExit as e:
            rc = e.code
        except BaseException:
            import traceback
            err.write("Traceback (uncaught)\n" + traceback.format_exc())
            rc = "raised"
    out.append({"name": name, "rc": rc, "stderr": err.getvalue(), "seconds": time.perf_counter() - t0,
                "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "tree": digest(root)})
print(json.dumps(out))
