"""`python -m localforge.runner`: the process the llama.cpp backend starts for each resident model."""

from localforge.runner.main import main

main()
