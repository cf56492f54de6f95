"""The matcher: evaluates saved audiences continuously and emits enrollments."""
