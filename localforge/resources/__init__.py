"""Memory figures and placement: the pools of VRAM and RAM, how much of each there is, and how
a model's layers are split between them. Backends and the scheduler both work in these terms."""
