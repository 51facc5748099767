"""`python -m localforge.runner`: the process the llama.cpp backend starts for each resident model.

The protocol takes the original stdout before anything else is imported, and file descriptor 1
then points at stderr: nothing an import or llama.cpp prints can land inside a frame.
"""

import os
import sys

protocol = os.fdopen(os.dup(1), "wb")
os.dup2(2, 1)
sys.stdout = sys.stderr

from localforge.runner.main import main  # noqa: E402

main(protocol)
