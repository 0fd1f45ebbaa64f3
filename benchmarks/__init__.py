"""netslim benchmarks: speed, size and accuracy figures, written as JSON and rendered into docs/."""
