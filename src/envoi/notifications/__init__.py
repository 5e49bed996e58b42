"""The notification center: what the platform tells its operators, in the console at once and by email."""
