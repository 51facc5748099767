"""What a GGUF file says: its metadata and tensors, the memory it will take, and its chat template
(Go or Jinja) turned into prompts. The store checks models with it; the llama.cpp backend serves
them with it."""
