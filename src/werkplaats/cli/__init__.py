"""The werkplaats command line."""
