"""Attack phase: the attacks, their stored artifacts, scoring as stored, sharding, the Square check."""
