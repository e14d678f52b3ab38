"""ecgstream."""
