"""The one inference path and the cache of what frozen network parts compute."""
