"""Scale-out on Dask: the executor chosen in params.yaml (`executor:`), featurization shards on
Dask workers, and LightGBM's Dask interface for training. Nothing here is imported on the local
path, so a plain run never needs dask."""
