"""The page in headless Chromium, against a real `dateline serve`."""
