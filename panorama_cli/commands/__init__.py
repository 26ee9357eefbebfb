"""One thin module per command: options, then one call into the library."""
