"""One router per resource: health, cities, events, status, changes."""
