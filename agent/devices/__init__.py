"""Device plugins: discover accelerators and describe, runtime-neutrally, how to expose them."""
