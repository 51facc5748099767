"""Where local models live: GGUF blobs, manifests naming them, and the models found elsewhere."""
