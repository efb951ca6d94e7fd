"""Container runtimes: Docker (default) and bare processes, behind one small protocol."""
