"""Personal data: detection (patterns with validators) before anything is stored."""
