"""Build tooling: the notebook runner, recording, the Claims page, reproducibility, the Dask prebuild, the GPU kit."""
