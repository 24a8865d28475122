"""One module per CLI command (or group of closely related commands): config class + runner + register()."""
