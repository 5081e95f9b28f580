"""edgewalk: Monte Carlo and exact hitting times of edge-conditioned policies on path-star graphs."""
