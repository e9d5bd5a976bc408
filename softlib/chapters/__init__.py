"""Per-chapter analysis: ``chNN`` holds chapter NN's modules, one per job, built on the core."""
