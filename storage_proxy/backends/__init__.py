"""Volume backends: one class per storage kind, selected by name through `berth.volumes`."""
